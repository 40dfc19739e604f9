"""`python -m cosim`: the `cosim` command."""

from cosim.cli import app

app()
