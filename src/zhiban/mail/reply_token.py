"""Per-ticket secret reply tokens: the only thing that threads a received mail onto a ticket.

The token is an HMAC of the ticket id under a key derived from the desk's secret key (itsdangerous'
Signer with its own salt, as the one-click acknowledge links are signed). Outgoing mail carries it in
Reply-To (`support+t<id>.<token>@domain`) and in its Message-ID, so a reply brings it back in its
recipient address or in In-Reply-To/References. A subject tag such as "[#3]" is guessable and never
threads on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parseaddr

from itsdangerous import Signer
from itsdangerous.encoding import base64_decode

REPLY_TOKEN_SALT = "zhiban.mail.reply"
TOKEN_LENGTH = 26  # base32 characters: 130 bits of the HMAC; lower case survives MTAs that fold case
# "+t12.<token>" in an address, ".t12.<token>." in one of our Message-IDs.
_TOKEN = re.compile(rf"[+.]t(\d{{1,12}})\.([a-z2-7]{{{TOKEN_LENGTH}}})(?![a-z2-7])", re.IGNORECASE)
MAX_TOKENS = 20  # tokens looked at in one mail; more is a hostile client

_key: dict[str, str] = {}
_key_defaults: list[Callable[[], str]] = []


def configure_reply_key(secret_key: str) -> None:
    """Sign reply tokens with this desk's secret key (the desk's hooks call this at start-up)."""
    _key["secret"] = secret_key


def reply_key_default(source: Callable[[], str]) -> None:
    """Where to take the key from when no desk configured it (set by mail.hooks)."""
    _key_defaults[:] = [source]


def reply_key() -> str:
    """The configured key, else the default's (a process that built no Desk, e.g. a bare engine worker)."""
    if "secret" not in _key:
        if not _key_defaults:
            raise RuntimeError("reply tokens are not configured: no desk and no mail.hooks")
        configure_reply_key(_key_defaults[0]())
    return _key["secret"]


def reply_token(secret_key: str, ticket_id: int) -> str:
    """The ticket's secret token: the same for every mail of the ticket, unguessable without the key."""
    signer = Signer(secret_key, salt=REPLY_TOKEN_SALT, key_derivation="hmac", digest_method=hashlib.sha256)
    digest = base64_decode(signer.get_signature(str(ticket_id)))
    return base64.b32encode(digest).decode().lower()[:TOKEN_LENGTH]


def is_valid_token(secret_key: str, ticket_id: int, token: str) -> bool:
    """True when `token` is this ticket's token (compared in constant time)."""
    return hmac.compare_digest(reply_token(secret_key, ticket_id), token.lower())


@dataclass(frozen=True)
class TicketAddressing:
    """What a mail about a ticket carries so that replies come back to it."""

    reply_to: str
    message_id: str


def ticket_addressing(secret_key: str, ticket_id: int, desk_address: str) -> TicketAddressing:
    """Reply-To and a fresh Message-ID for one outgoing mail of the ticket, both carrying its token."""
    local, _, domain = parseaddr(desk_address)[1].rpartition("@")
    local, domain = (local or "zhiban").partition("+")[0], domain or "localhost"
    token = reply_token(secret_key, ticket_id)
    return TicketAddressing(
        reply_to=f"{local}+t{ticket_id}.{token}@{domain}",
        message_id=f"<zhiban.t{ticket_id}.{token}.{secrets.token_hex(8)}@{domain}>",
    )


def tickets_named(secret_key: str, values: Iterable[str]) -> list[int]:
    """Tickets whose valid token appears in these addresses or Message-IDs, in order; forged tokens are dropped."""
    found: list[int] = []
    seen = 0
    for value in values:
        for match in _TOKEN.finditer(value):
            seen += 1
            if seen > MAX_TOKENS:
                return found
            ticket_id = int(match.group(1))
            if ticket_id not in found and is_valid_token(secret_key, ticket_id, match.group(2)):
                found.append(ticket_id)
    return found
