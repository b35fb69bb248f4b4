"""Pure rules of ticket mail: parsing, charsets, auto-reply detection, quote trimming and threading."""

from __future__ import annotations

import email
import email.errors
import hashlib
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses
from html.parser import HTMLParser

from zhiban.core.errors import InvalidInput

MAX_INBOUND_BYTES = 10 * 1024 * 1024  # the SMTP SIZE we announce; larger mail is refused with 552
MAX_SUBJECT = 200  # as tickets.model.MAX_SUBJECT
MAX_BODY = 100_000  # as tickets.model.MAX_BODY
MAX_HEADER_IDS = 50  # Message-IDs read from In-Reply-To/References; more is a broken or hostile client
MAX_SENT_REFERENCES = 20  # what we put in References: the thread's first message and the latest ones
# MIME bounds: real mail nests a few levels (mixed > alternative > related); deeper is hostile, and
# the standard library's parser recurses per level (a thousand levels raise RecursionError).
MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 500
MAX_ADDRESSES = 100  # To/Cc addresses read
MAX_AUTH_RESULTS = 20  # Authentication-Results headers read
# States of a held mail (mail that did not authenticate, waiting for an agent).
HELD = "held"
RELEASED = "released"
DISCARDED = "discarded"
HELD_STATES = (HELD, RELEASED, DISCARDED)
NO_SUBJECT = "(no subject)"
TRUNCATED = "\n\n[… message truncated]"

# Chinese mail often says GB2312 but uses characters only GBK/GB18030 have (朱镕基's 镕):
# GB18030 is a superset of both, so decoding with it never loses what the sender meant.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
}
# Visible ASCII only (RFC 5322 msg-id): a NUL or a control character could never be stored.
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{3,250}>")
_TOKEN = re.compile(r"\[\s*(?:zhiban\s*)?#(\d{1,12})\s*\]", re.IGNORECASE)
_BOUNCE_SENDERS = frozenset({"mailer-daemon"})
_LIST_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_BROKEN_MULTIPART = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)


@dataclass(frozen=True)
class MailFile:
    """A file a mail carried: its name and type as the mail declares them, and its decoded bytes."""

    filename: str | None
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class InboundMail:
    """What the desk needs from one received mail; `auto_reason` is set for mail no human wrote."""

    sender: str
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    auto_reason: str | None = None
    # Addresses in To and Cc (a reply to the desk's Reply-To names the ticket's token there).
    addressed_to: tuple[str, ...] = ()
    # Authentication-Results headers as received (only a trusted authserv-id's are believed).
    auth_results: tuple[str, ...] = ()
    dkim_signed: bool = False
    # A drill's mark ("<drill id>; key=<key>", header X-Zhiban-Drill): only the drill that minted the key vouches.
    drill_mark: str | None = None
    files: tuple[MailFile, ...] = ()  # attachments (and inline parts that are not the mail's text)

    @property
    def sender_domain(self) -> str:
        """The domain of the From: address."""
        return self.sender.rpartition("@")[2]

    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, the most direct first (In-Reply-To, then References newest first)."""
        ordered = [*self.in_reply_to, *reversed(self.references)]
        return tuple(dict.fromkeys(ordered))


# --- charsets and headers ---------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes as text in the declared charset; undeclared or wrong charsets fall back to UTF-8, then GB18030."""
    return without_nul(_decode_bytes(data, charset))


def without_nul(text: str) -> str:
    """The text without NUL characters, which mean nothing in mail and which PostgreSQL text cannot hold."""
    return text.replace("\x00", "")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or "").strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    candidates = [name] if name else []
    candidates += [c for c in ("utf-8", "gb18030") if c not in candidates]
    for codec in candidates:
        try:
            return data.decode(codec)
        except LookupError:
            continue
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def decode_header_value(value: str) -> str:
    """A header as text: RFC 2047 encoded-words decoded, raw 8-bit (UTF-8 or GBK) recovered, unfolded."""
    value = re.sub(r"\r?\n[ \t]", " ", value)
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        # message_from_bytes keeps undeclared 8-bit header bytes as surrogate escapes.
        value = decode_bytes(value.encode("ascii", "surrogateescape"), None)
    try:
        parts = decode_header(value)
    except email.errors.HeaderParseError:
        return without_nul(" ".join(value.split()))
    text = "".join(part if isinstance(part, str) else decode_bytes(part, charset) for part, charset in parts)
    return without_nul(" ".join(text.split()))


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def message_ids(value: str | None) -> tuple[str, ...]:
    """The Message-IDs in a header such as References, at most MAX_HEADER_IDS."""
    if not value:
        return ()
    return tuple(_MESSAGE_ID.findall(value)[:MAX_HEADER_IDS])


def inbound_message_id(raw: bytes) -> str:
    """A stable Message-ID for mail that has none, so a resent copy is still recognised as the same."""
    return f"<zhiban.in.{hashlib.sha256(raw).hexdigest()[:32]}@inbound.invalid>"


# --- bodies -----------------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    """Visible text of an HTML mail: block elements end lines, quoted blocks are marked with '>'."""

    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "hr"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._hidden = 0
        self._quoted = 0

    def _end_line(self) -> None:
        text = " ".join("".join(self._line).split())
        self._line = []
        self.lines.append(("> " * self._quoted + text).rstrip() if text else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "blockquote":
            self._end_line()
            self._quoted += 1
        elif tag in self._BLOCKS:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "blockquote":
            self._end_line()
            self._quoted = max(0, self._quoted - 1)
        elif tag in self._BLOCKS:
            self._end_line()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._line.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body (no layout, no links kept beyond their text)."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    parser._end_line()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(parser.lines)).strip()


def _is_attachment(part: Message) -> bool:
    return (part.get_content_disposition() or "") == "attachment"


def body_text(msg: Message) -> str:
    """The mail's text: the first text/plain part, else the first text/html part as text."""
    plain: str | None = None
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        text = decode_bytes(data, part.get_content_charset())
        if ctype == "text/plain" and plain is None:
            plain = text
        elif ctype == "text/html" and html is None:
            html = text
    if plain is not None and plain.strip():
        return plain.replace("\r\n", "\n").strip()
    if html is not None:
        return html_to_text(html)
    return ""


def mail_files(msg: Message) -> tuple[MailFile, ...]:
    """The files a mail carries: parts marked as attachments, and named parts that are not its text (inline
    images); the text/plain or text/html part that is the body is never one."""
    found: list[MailFile] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        ctype = part.get_content_type()
        if not _is_attachment(part) and (name is None or ctype in ("text/plain", "text/html")):
            continue
        if ctype in ("message/rfc822",):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        found.append(MailFile(decode_header_value(name) if name else None, ctype, data))
    return tuple(found)


# --- quoted history -----------------------------------------------------------------------------

_REPLY_HEADERS = (
    re.compile(r"^On .{1,400} wrote:$"),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^-{2,}\s*(?:Original Message|原始邮件|原始郵件)\s*-{2,}$", re.IGNORECASE),  # Outlook, QQ, Foxmail
    re.compile(r"^在.{1,400}写道[:：]$"),  # Chinese Gmail / Apple Mail / Thunderbird
)
_OUTLOOK_FROM = re.compile(r"^(?:From|发件人)\s*[:：]")
_OUTLOOK_SENT = re.compile(r"^(?:Sent|发送时间)\s*[:：]")
_SIGNATURE = frozenset({"--", "-- "})


def _cut_index(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        stripped = line.strip()
        joined = f"{stripped} {lines[i + 1].strip()}" if i + 1 < len(lines) else stripped
        if any(p.match(stripped) or p.match(joined) for p in _REPLY_HEADERS):
            return i
        if line.rstrip("\r") in _SIGNATURE:
            return i
        # Outlook's quoted header block: "From: …" followed shortly by "Sent: …".
        if _OUTLOOK_FROM.match(stripped) and any(_OUTLOOK_SENT.match(n.strip()) for n in lines[i + 1 : i + 4]):
            return i
    return None


def trim_quoted(text: str) -> str:
    """The new part of a reply: cut at the first reply header or signature, drop trailing '>' quotes.

    Conservative: quotes interleaved with new text stay; a mail that is nothing but quote is kept whole.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    cut = _cut_index(lines)
    kept = lines[:cut] if cut is not None else lines
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith(">")):
        kept.pop()
    trimmed = "\n".join(kept).strip()
    return trimmed or text.strip()


def bounded_body(text: str) -> str:
    """The text cut to what a ticket comment holds."""
    if len(text) <= MAX_BODY:
        return text
    return text[: MAX_BODY - len(TRUNCATED)] + TRUNCATED


# --- subjects and tokens -----------------------------------------------------------------------


def ticket_token(subject: str) -> int | None:
    """The ticket number in a subject tag such as "[#1234]" or "[zhiban #1234]", if any."""
    match = _TOKEN.search(subject)
    return int(match.group(1)) if match else None


# The customer names a new ticket's priority as the portal and API let them: "[P1] Live rooms stutter".
_PRIORITY_TAG = re.compile(r"^\s*\[\s*(P[1-4])\s*\]", re.IGNORECASE)


def subject_priority(subject: str) -> str | None:
    """The priority a leading "[P1]".."[P4]" tag of a mail subject names, else None (the desk's default)."""
    match = _PRIORITY_TAG.match(subject)
    return match.group(1).upper() if match else None


def ticket_subject(subject: str) -> str:
    """A new ticket's subject from a mail subject: tags removed, whitespace collapsed, bounded."""
    cleaned = " ".join(_TOKEN.sub(" ", _PRIORITY_TAG.sub(" ", subject, count=1)).split())
    if not cleaned:
        return NO_SUBJECT
    return cleaned if len(cleaned) <= MAX_SUBJECT else cleaned[: MAX_SUBJECT - 1] + "…"


def outbound_subject(ticket_id: int, subject: str) -> str:
    """The subject of mail about a ticket: "[#id] subject", the tag that threads replies back."""
    return f"[#{ticket_id}] {' '.join(subject.split())}"


def sent_references(thread: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """References for a new message: the thread's first and its latest ids (RFC 5322 3.6.4 trimming)."""
    ids = tuple(dict.fromkeys(thread))
    if len(ids) <= MAX_SENT_REFERENCES:
        return ids
    return (ids[0], *ids[-(MAX_SENT_REFERENCES - 1) :])


def compose_text(body: str, link_label: str, url: str, hint: str) -> str:
    """An outbound mail's text: the message, then the portal link and how to answer."""
    return f"{body.strip()}\n\n-- \n{link_label}: {url}\n{hint}"


# --- the whole message -------------------------------------------------------------------------


def auto_reason(msg: Message, envelope_sender: str | None, from_address: str) -> str | None:
    """Why this mail was written by a machine (bounce, auto-reply, list), or None for a person's mail."""
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "empty return path (a bounce)"
    if (_raw_header(msg, "Return-Path") or "").strip() == "<>":
        return "empty Return-Path (a bounce)"
    for address in (from_address, envelope_sender or ""):
        if address.partition("@")[0].lower() in _BOUNCE_SENDERS:
            return f"sent by {address}"
    if msg.get_content_type() == "multipart/report":
        return "delivery or read report (multipart/report)"
    auto_submitted = (_raw_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted[:40]}"
    precedence = (_raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in _LIST_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if _raw_header(msg, name) is not None:
            return f"{name} header"
    return None


def _header_values(msg: Message, name: str, limit: int) -> tuple[str, ...]:
    values = [str(value) for key, value in msg.raw_items() if key.lower() == name.lower()]
    return tuple(values[:limit])


def _addresses(msg: Message) -> tuple[str, ...]:
    raw = [decode_header_value(v) for name in ("To", "Cc") for v in _header_values(msg, name, MAX_ADDRESSES)]
    return tuple(addr.strip().lower() for _, addr in getaddresses(raw)[:MAX_ADDRESSES] if addr)


def check_mime_shape(msg: Message) -> None:
    """Refuse mail nested deeper than MAX_MIME_DEPTH or with more than MAX_MIME_PARTS parts (no recursion)."""
    stack: list[tuple[Message, int]] = [(msg, 1)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > MAX_MIME_DEPTH:
            raise InvalidInput(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels")
        if parts > MAX_MIME_PARTS:
            raise InvalidInput(f"more than {MAX_MIME_PARTS} MIME parts")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))


def _from_address(msg: Message) -> tuple[str, int]:
    raw = _raw_header(msg, "From")
    if raw is None:
        return "", 0
    pairs = [addr for _, addr in getaddresses([decode_header_value(raw)]) if addr]
    return (pairs[0].strip().lower() if pairs else ""), len(pairs)


def parse_mail(raw: bytes, envelope_sender: str | None = None) -> InboundMail:
    """Read one received mail; raises InvalidInput when it is too broken to act on."""
    if not raw.strip():
        raise InvalidInput("empty message")
    if len(raw) > MAX_INBOUND_BYTES:
        raise InvalidInput(f"message larger than {MAX_INBOUND_BYTES} bytes")
    try:
        msg = email.message_from_bytes(raw)
    except RecursionError as exc:
        raise InvalidInput(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels") from exc
    check_mime_shape(msg)
    sender, count = _from_address(msg)
    subject = decode_header_value(_raw_header(msg, "Subject") or "")
    message_id = next(iter(message_ids(_raw_header(msg, "Message-ID"))), None)
    in_reply_to = message_ids(_raw_header(msg, "In-Reply-To"))
    references = message_ids(_raw_header(msg, "References"))
    reason = auto_reason(msg, envelope_sender, sender)
    if reason is not None:
        return InboundMail(sender, subject, message_id, in_reply_to, references, "", reason)
    if count == 0 or "@" not in sender:
        raise InvalidInput("no sender address in From")
    if count > 1 or len(_header_values(msg, "From", 2)) > 1:
        raise InvalidInput("more than one address in From")
    for part in msg.walk():
        if any(isinstance(defect, _BROKEN_MULTIPART) for defect in part.defects):
            raise InvalidInput("broken MIME structure (multipart without its boundaries)")
    return InboundMail(
        sender,
        subject,
        message_id,
        in_reply_to,
        references,
        body_text(msg),
        addressed_to=_addresses(msg),
        auth_results=_header_values(msg, "Authentication-Results", MAX_AUTH_RESULTS),
        dkim_signed=_raw_header(msg, "DKIM-Signature") is not None,
        drill_mark=(_raw_header(msg, "X-Zhiban-Drill") or "")[:200] or None,
        files=mail_files(msg),
    )


# --- support mailboxes read over IMAP -----------------------------------------------------------

SECURITIES = ("tls", "starttls", "none")
AFTER_FILING = ("seen", "move")  # flag \Seen, or move to another folder
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 10, 3600
MIN_MESSAGE_BYTES = 1024
MAX_MAILBOXES = 50
MAX_FOLDER = 200
_MAILBOX_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"+]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class MailboxSettings:
    """What an admin configures for one support mailbox."""

    name: str
    address: str
    host: str
    port: int
    security: str
    username: str
    password: str
    folder: str = "INBOX"
    after_filing: str = "seen"
    move_to: str | None = None
    authserv_id: str = ""
    poll_seconds: int = 60
    max_message_bytes: int = MAX_INBOUND_BYTES
    idle: bool = True
    # An inbox already full of old mail: the first poll starts after what is there (else it files it all).
    skip_existing: bool = False

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return f"MailboxSettings({self.name!r}, {self.username}@{self.host}:{self.port}/{self.folder})"


def check_mailbox(box: MailboxSettings) -> None:
    """Refuse a mailbox configuration that could never work, before anything is stored."""
    texts = (
        box.name,
        box.address,
        box.host,
        box.username,
        box.password,
        box.folder,
        box.move_to or "",
        box.authserv_id,
    )
    if any(ord(c) < 32 or c == "\x7f" for text in texts for c in text):
        raise InvalidInput("no control characters (NUL, line breaks...) in a mailbox's settings")
    if not _MAILBOX_NAME.match(box.name):
        raise InvalidInput("name: 1-64 lower-case letters, digits, '.', '_' or '-'")
    if not _ADDRESS.match(box.address):
        # No '+': replies to a ticket go to address+t<id>.<token>, which the mailbox's server must deliver here.
        raise InvalidInput(f"address: not a plain e-mail address: {box.address[:80]!r}")
    if not _HOST.match(box.host):
        raise InvalidInput("host: not a host name or address")
    if not 1 <= box.port <= 65535:
        raise InvalidInput("port must be 1-65535")
    if box.security not in SECURITIES:
        raise InvalidInput(f"security must be one of {', '.join(SECURITIES)}")
    if not 1 <= len(box.username) <= 254 or not 1 <= len(box.password) <= 500:
        raise InvalidInput("username (1-254 characters) and password (1-500) are required")
    for what, folder in (("folder", box.folder), ("move_to", box.move_to)):
        if folder is not None and (not 1 <= len(folder) <= MAX_FOLDER or any(ord(c) < 32 for c in folder)):
            raise InvalidInput(f"{what}: 1-{MAX_FOLDER} characters, no control characters")
    if box.after_filing not in AFTER_FILING:
        raise InvalidInput(f"after_filing must be one of {', '.join(AFTER_FILING)}")
    if (box.after_filing == "move") != (box.move_to is not None):
        raise InvalidInput("move_to is the folder filed mail is moved to: required with after_filing=move, else not")
    if box.move_to == box.folder:
        raise InvalidInput("move_to must be another folder than the one read")
    if len(box.authserv_id) > 200:
        raise InvalidInput("authserv_id: at most 200 characters")
    if not MIN_POLL_SECONDS <= box.poll_seconds <= MAX_POLL_SECONDS:
        raise InvalidInput(f"poll_seconds must be {MIN_POLL_SECONDS}-{MAX_POLL_SECONDS}")
    if not MIN_MESSAGE_BYTES <= box.max_message_bytes <= MAX_INBOUND_BYTES:
        raise InvalidInput(f"max_message_bytes must be {MIN_MESSAGE_BYTES}-{MAX_INBOUND_BYTES}")


def uids_to_read(found: list[int], last_uid: int, limit: int) -> list[int]:
    """The UIDs above the cursor, oldest first, at most `limit` (IMAP's "n:*" also answers the top UID below n)."""
    return sorted(uid for uid in set(found) if uid > last_uid)[:limit]
