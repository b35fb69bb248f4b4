"""Server-rendered forms: their raw fields, and a change whose refused input is shown above the form again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from zhiban.core.errors import ZhibanError

# Statuses of a refusal the person filling the form can fix: bad input, a name already taken.
FIXABLE = frozenset({409, 422})


async def _raw_form(request: Request) -> FormData:
    return await request.form()


# Every field of a posted form, for forms with repeated or numbered rows (layers, levels, windows).
RawForm = Annotated[FormData, Depends(_raw_form)]


def text(form: FormData, name: str) -> str:
    """One text field, stripped; "" when absent (or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def texts(form: FormData, name: str) -> list[str]:
    """Every value of a repeated field, in the order sent, blanks left out."""
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def validation_message(exc: ValidationError) -> str:
    """A pydantic refusal as one line: `field: reason; …`."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
    return "; ".join(parts)


@dataclass
class Outcome:
    """What became of a change: `error` is the message to show when its input was refused, `status` the answer's."""

    error: str | None = None
    status: int = 200


@contextmanager
def change(session: Session) -> Iterator[Outcome]:
    """Run a change in a savepoint: refused input undoes all of it and becomes `outcome.error`.

    The request's transaction commits whatever the handler leaves, so a half-made change must not survive
    a refusal; other errors (not found, forbidden) propagate to the error page.
    """
    outcome = Outcome()
    try:
        with session.begin_nested():
            yield outcome
    except ValidationError as exc:
        outcome.error, outcome.status = validation_message(exc), 422
    except ZhibanError as exc:
        if exc.status not in FIXABLE:
            raise
        outcome.error, outcome.status = exc.detail, exc.status
