"""Shared field types for request bodies: bounded, and free of characters a database refuses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field, StringConstraints


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the edge instead of failing at the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(_no_nul)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1, description="ticket number")]
ViewId = Annotated[int, Path(ge=1, le=2**31 - 1, description="saved view number")]
Limit = Annotated[int, Field(ge=1, le=200)]
Offset = Annotated[int, Field(ge=0, le=1_000_000)]
