"""Consoles for the command line: a terminal's own width; piped or redirected, whole values.

rich cuts output to 80 columns when it is not writing to a terminal, so `zhiban incidents list | grep` saw ids
as "ef04fd43…". Output read by a program or a file keeps every character unless COLUMNS says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from zhiban.core.errors import ZhibanError

UNCUT = 100_000  # columns of output that is not a terminal's: nothing is cut or folded


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that cuts nothing when no terminal reads it."""
    plain = Console(stderr=stderr)
    if plain.is_terminal or os.environ.get("COLUMNS"):
        return plain
    return Console(stderr=stderr, width=UNCUT)


@contextmanager
def domain_errors_exit() -> Iterator[None]:
    """A command's domain error (not found, invalid, forbidden…) is one `error:` line on stderr and exit code 2."""
    try:
        yield
    except ZhibanError as exc:
        console(stderr=True).print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
