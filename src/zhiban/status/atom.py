"""An Atom 1.0 feed (RFC 4287) of status page incidents: one entry per incident, its updates newest first.

Ids are tag: URIs (RFC 4151), e.g. ``tag:status.example.com,2026-01-01:incident/42``: stable for an
incident whatever host or path serves the page. `updated` is the incident's latest change, so readers
show an entry again when a new update is posted. Text goes through xml.etree, which escapes markup;
characters XML 1.0 cannot carry (most C0 controls) are dropped first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from urllib.parse import quote

from zhiban.core.errors import InvalidInput
from zhiban.status.model import StatusIncident

ATOM_NS = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 200
# A DNS name or an e-mail address, as RFC 4151 allows for the authority.
_AUTHORITY = re.compile(
    r"^(?:[A-Za-z0-9._%+-]+@)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*$"
)
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """Who publishes the feed, and where: `authority` and `minted` make the tag: ids; URLs are absolute."""

    title: str
    authority: str  # e.g. "status.example.com"
    minted: date  # a date the authority owned that name; never change it once published
    self_url: str  # the feed's own URL
    page_url: str  # the status page
    author: str = "zhiban"
    lang: str = "en"

    def __post_init__(self) -> None:
        if not self.title.strip() or len(self.title) > 300:
            raise InvalidInput("feed title must be 1-300 characters")
        if not _AUTHORITY.match(self.authority) or len(self.authority) > 253:
            raise InvalidInput(f"tag authority must be a DNS name or e-mail address, not {self.authority!r}")
        for name in ("self_url", "page_url"):
            url = getattr(self, name)
            if not re.match(r"^https?://[^\s]+$", url) or len(url) > 2000:
                raise InvalidInput(f"{name} must be an absolute http(s) URL")


def tag_uri(info: FeedInfo, specific: str) -> str:
    """A tag: URI under the feed's authority; the specific part is percent-encoded to safe characters."""
    return f"tag:{info.authority},{info.minted.isoformat()}:{quote(specific, safe='/-._~')}"


def _clean(text: str) -> str:
    return _XML_BAD.sub("", text)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = _clean(text)
    return element


def _content_html(incident: StatusIncident) -> str:
    """The updates as a small HTML fragment (escaped here; the feed escapes it again as text)."""
    items = [
        f"<p><strong>{escape(u.status.replace('_', ' ').capitalize())}</strong> "
        f"<small>{escape(_rfc3339(u.at))}</small><br>{escape(_clean(u.body))}</p>"
        for u in incident.updates_newest_first()
    ]
    components = ", ".join(incident.components)
    head = f"<p>Severity: {escape(incident.severity)}" + (f" — {escape(components)}" if components else "") + "</p>"
    return head + "".join(items)


def incident_feed(
    info: FeedInfo,
    incidents: Iterable[StatusIncident],
    incident_url: Callable[[StatusIncident], str],
    now: datetime,
) -> bytes:
    """The Atom document (UTF-8 bytes) for the newest `MAX_ENTRIES` incidents by last change."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    chosen = sorted(incidents, key=lambda i: (i.last_changed(), str(i.incident_id)), reverse=True)[:MAX_ENTRIES]
    # Unqualified tags under a default xmlns: no global namespace registry to touch.
    feed = ET.Element("feed", xmlns=ATOM_NS)
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", info.lang)
    _sub(feed, "id", tag_uri(info, "status"))
    _sub(feed, "title", info.title)
    # An empty feed still needs `updated`: use the time it was generated.
    _sub(feed, "updated", _rfc3339(max((i.last_changed() for i in chosen), default=now)))
    author = _sub(feed, "author")
    _sub(author, "name", info.author)
    _sub(feed, "link", rel="self", type="application/atom+xml", href=info.self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=info.page_url)
    _sub(feed, "generator", "zhiban")
    for incident in chosen:
        entry = _sub(feed, "entry")
        _sub(entry, "id", tag_uri(info, f"incident/{incident.incident_id}"))
        status = "resolved" if incident.resolved_at is not None else "ongoing"
        _sub(entry, "title", f"[{status}] {incident.title}")
        _sub(entry, "updated", _rfc3339(incident.last_changed()))
        _sub(entry, "published", _rfc3339(incident.started_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=incident_url(incident))
        _sub(entry, "category", term=incident.severity, label=incident.severity)
        for component in incident.components:
            _sub(entry, "category", term=_clean(component))
        latest = incident.updates_newest_first()
        if latest:
            _sub(entry, "summary", latest[0].body[:500])
        _sub(entry, "content", _content_html(incident), type="html")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8", xml_declaration=False)
