"""Is a received mail really from the domain in its From:? DMARC, DKIM or SPF results, aligned with From.

Two sources, either suffices: the Authentication-Results header that the receiving MTA adds (RFC 8601),
trusted only when its authserv-id is one configured in ZHIBAN_MAIL_AUTHSERV_ID (anyone can write
that header; the MTA must strip copies of its own id from incoming mail, as OpenDMARC/rspamd do),
and the mail's own DKIM signatures verified here with dkimpy. Alignment is strict-or-parent: the
authenticated domain is the From: domain or a parent of it (no public-suffix list is consulted).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import authres
import dkim

log = logging.getLogger("zhiban.mail")

MAX_DKIM_SIGNATURES = 3  # DKIM signatures verified per mail (each may cost a DNS lookup)
# An MTA's Authentication-Results is a few hundred characters; the parser is slow on huge ones.
MAX_RESULTS_CHARS = 8_000
_COMMENT = re.compile(r"\([^()]*\)")

# dkimpy's DNS lookup: (name: bytes, timeout=...) -> the TXT record as bytes, or None.
DnsTxt = Callable[..., bytes | None]


@dataclass(frozen=True)
class SenderCheck:
    """The verdict on a mail's From: domain, and what it rests on (for logs and the held-mail queue)."""

    authenticated: bool
    reason: str


def trusted_ids(setting: str) -> frozenset[str]:
    """The authserv-ids named in ZHIBAN_MAIL_AUTHSERV_ID (comma-separated, case-insensitive)."""
    return frozenset(part.strip().lower() for part in setting.split(",") if part.strip())


def aligned(domain: str, from_domain: str) -> bool:
    """True when `domain` is the From: domain or a parent of it (never a bare top-level domain)."""
    d = domain.strip().lower().rstrip(".").rpartition("@")[2]
    f = from_domain.strip().lower().rstrip(".")
    return bool(d and f) and "." in d and (f == d or f.endswith("." + d))


def _property(result: authres.AuthenticationResult, ptype: str, name: str) -> str:
    for prop in result.properties:
        if (prop.type or "").lower() == ptype and (prop.name or "").lower() == name:
            return str(prop.value or "")
    return ""


def _passes(result: authres.AuthenticationResult, from_domain: str) -> str | None:
    """What this passing result authenticates, if it is aligned with the From: domain."""
    method = (result.method or "").lower()
    if (result.result or "").lower() != "pass":
        return None
    if method == "dmarc" and aligned(_property(result, "header", "from"), from_domain):
        return "dmarc=pass"
    if method == "dkim":
        signer = _property(result, "header", "d") or _property(result, "header", "i")
        if aligned(signer, from_domain):
            return f"dkim=pass d={signer}"
    if method == "spf" and aligned(_property(result, "smtp", "mailfrom"), from_domain):
        return "spf=pass (aligned mailfrom)"
    return None


def check_results_headers(values: Iterable[str], from_domain: str, trusted: frozenset[str]) -> SenderCheck | None:
    """A pass from a trusted Authentication-Results header, or None."""
    for value in values:
        value = " ".join(value.split())
        # Only the trusted MTA's headers are parsed: a cheap look at the authserv-id first.
        named = _COMMENT.sub(" ", value.partition(";")[0]).split()
        if not named or named[0].lower() not in trusted:
            log.info("Authentication-Results from untrusted authserv-id %r ignored", (named or [""])[0][:80])
            continue
        if len(value) > MAX_RESULTS_CHARS:
            log.info("Authentication-Results of %s characters ignored", len(value))
            continue
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception as exc:  # authres raises its own errors, and others on odd input
            log.info("unreadable Authentication-Results ignored: %s", exc)
            continue
        authserv = (header.authserv_id or "").lower()
        if authserv not in trusted:
            log.info("Authentication-Results from untrusted authserv-id %r ignored", authserv[:80])
            continue
        for result in header.results:
            what = _passes(result, from_domain)
            if what is not None:
                return SenderCheck(True, f"{what} ({authserv})")
    return None


def verify_dkim(raw: bytes, from_domain: str, dnsfunc: DnsTxt | None = None) -> SenderCheck | None:
    """A pass from one of the mail's own DKIM signatures whose d= is aligned with From:, or None."""
    try:
        verifier = dkim.DKIM(raw)
        count = len([h for h in verifier.headers if h[0].lower() == b"dkim-signature"])
    except Exception as exc:
        log.info("DKIM: mail unreadable by the verifier: %s", exc)
        return None
    for index in range(min(count, MAX_DKIM_SIGNATURES)):
        try:
            ok = verifier.verify(idx=index, dnsfunc=dnsfunc) if dnsfunc else verifier.verify(idx=index)
        except Exception as exc:  # a bad key, a DNS failure: this signature proves nothing
            log.info("DKIM signature %s not verified: %s", index, exc)
            continue
        signer = (verifier.domain or b"").decode("ascii", "replace")
        if ok and aligned(signer, from_domain):
            return SenderCheck(True, f"dkim=pass d={signer} (verified)")
    return None


def check_sender(
    raw: bytes,
    from_domain: str,
    results_headers: Iterable[str],
    *,
    trusted: frozenset[str],
    dkim_signed: bool,
    verify: bool,
    dnsfunc: DnsTxt | None = None,
) -> SenderCheck:
    """Whether the From: domain is authenticated, by a trusted MTA's results or by the mail's own DKIM."""
    by_mta = check_results_headers(results_headers, from_domain, trusted)
    if by_mta is not None:
        return by_mta
    if verify and dkim_signed:
        own = verify_dkim(raw, from_domain, dnsfunc)
        if own is not None:
            return own
    return SenderCheck(False, f"no aligned DMARC, DKIM or SPF pass for {from_domain}")
