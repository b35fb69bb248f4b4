"""`zhiban …` run in the test's own process, as the installed command would run it (click's CliRunner).

A real `zhiban` process pays for an interpreter and the desk's imports: ~2 s of CPU each, tens of seconds on a
machine under load. Tests about what a command does call `zhiban()` here; tests about the process itself (exit
on a signal, a server, what the installed script prints on a bad environment) keep starting the real one.

What the subprocess would see is reproduced: the whole environment (keys absent from `env` are unset), the
working directory, stdin, the desk's settings read afresh, `main`'s WARNING log lines on stderr and its answer to
a domain error that escapes a command (one `error:` line, exit code 2).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from click.testing import CliRunner


@dataclass(frozen=True)
class Ran:
    """What `subprocess.run(..., capture_output=True)` would have returned: text, or bytes when stdin was bytes."""

    args: tuple[str, ...]
    returncode: int
    stdout: Any
    stderr: Any


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time: the runner's captured stream while a command runs."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


@cache
def _command() -> Any:
    import typer

    from zhiban.cli import command

    return typer.main.get_command(command())


def zhiban(
    *args: str, env: Mapping[str, str] | None = None, input: str | bytes | None = None, cwd: Path | str | None = None
) -> Ran:
    """Run `zhiban *args` in this process with `env` as its whole environment (default: this one's)."""
    from zhiban.core.errors import ZhibanError
    from zhiban.core.settings import get_settings

    changes: dict[str, str | None] = {}
    if env is not None:
        changes = {k: v for k, v in env.items() if os.environ.get(k) != v}
        changes.update({k: None for k in os.environ if k not in env})
    # `main` logs WARNING and above to stderr (logging.basicConfig).
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    get_settings.cache_clear()  # the settings of this run's environment, not of an earlier one
    try:
        with contextlib.chdir(cwd or os.getcwd()):
            result = CliRunner().invoke(_command(), list(args), input=input, env=changes, prog_name="zhiban")
    finally:
        root.removeHandler(handler)
        get_settings.cache_clear()
    code, stderr = result.exit_code, result.stderr
    if isinstance(result.exception, ZhibanError):  # `main` turns a domain error into one line and exit code 2
        code, stderr = 2, stderr + f"error: {result.exception.detail}\n"
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # the interpreter's report; exit code 1
    if isinstance(input, bytes):
        return Ran(args, code, result.stdout_bytes, stderr.encode())
    return Ran(args, code, result.stdout, stderr)
