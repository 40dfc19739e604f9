"""What the command line prints: user text (paths, file lines, exception messages) exactly as it is.

rich reads ``[...]`` as markup and ``:x:`` as an emoji code; these consoles do neither, and the few
styled words are built as ``Text``, never from markup strings.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console(markup=False, emoji=False, highlight=False)
_errors = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr, the message verbatim, and exit with status 2."""
    _errors.print(Text.assemble(("error:", "bold red"), " ", message))
    raise typer.Exit(2)
