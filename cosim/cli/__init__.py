"""The command line: `cosim` (main.py) with `cosim sumo` (sumo.py) and `cosim doctor` (doctor.py)."""

from cosim.cli.main import app

__all__ = ["app"]
