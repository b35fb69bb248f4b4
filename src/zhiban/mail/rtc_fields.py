"""RTC fields written as simple lines in a customer's mail: "App ID: …", "Channel: …", "SDK: 4.3.2",
"频道：…", "发生时间：2026-12-07 14:30". Pure: the values found, as text and times; the ticket checks them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

MAX_LINES: Final = 300  # fields sit near the top of a mail; a long log pasted below is not read
MAX_VALUE: Final = 300

# Label -> field name; matched case-insensitively, with an ASCII or a full-width colon.
_LABELS: Final = {
    "app_id": r"app\s*[-_]?\s*id|appid|应用\s*id|应用\s*(?:编号|标识)?",
    "channel_name": r"channel(?:\s*name)?|channel_name|room(?:\s*(?:name|id))?|频道(?:名称|名|号)?|房间(?:名称|名|号)?",
    "user_ids": r"user\s*[-_]?\s*ids?|uids?|用户\s*(?:ids?|uids?)",
    "sdk_version": r"sdk(?:\s*version)?|sdk\s*版本|版本",
    "platform": r"platform|os|平台|系统|操作系统",
    "occurred_at": r"time|when|occurred(?:\s*at)?|happened(?:\s*at)?|发生时间|时间|出现时间",
}
_LINE: Final = re.compile(
    r"^\s*(?:[-*•·]\s*)?(?P<label>"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern in _LABELS.items())
    + r")\s*[:：]\s*(?P<value>\S.*?)\s*$",
    re.IGNORECASE,
)
_VERSION: Final = re.compile(r"\bv?(\d+(?:\.\d+){1,3}(?:[-+._][0-9A-Za-z]+)*)")
_PLATFORMS: Final = {
    "android": "android",
    "ios": "ios",
    "ipados": "ios",
    "web": "web",
    "chrome": "web",
    "safari": "web",
    "firefox": "web",
    "windows": "windows",
    "win": "windows",
    "macos": "macos",
    "mac": "macos",
    "linux": "linux",
    "electron": "electron",
    "flutter": "flutter",
    "react-native": "react-native",
    "unity": "unity",
    "小程序": "miniapp",
    "微信小程序": "miniapp",
    "鸿蒙": "harmonyos",
    "harmonyos": "harmonyos",
}
_TIME: Final = re.compile(
    r"(?P<date>\d{4}[-/.]\d{1,2}[-/.]\d{1,2})[ T]+(?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"\s*(?P<zone>Z|(?:UTC|GMT)?\s*[+-]\s*\d{1,2}(?::?\d{2})?|UTC|GMT)?",
    re.IGNORECASE,
)
_ZONE: Final = re.compile(r"(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_SPLIT: Final = re.compile(r"[,，;；、\s]+")


def _platform(value: str) -> str | None:
    for word in re.split(r"[\s/(),，（）]+", value.lower()):
        if word in _PLATFORMS:
            return _PLATFORMS[word]
    for word, name in _PLATFORMS.items():  # Chinese has no spaces: 微信小程序上
        if not word.isascii() and word in value:
            return name
    return None


def parse_time(value: str) -> datetime | None:
    """A date and time as mail writes it: "2026-12-07 14:30", "2026/12/7 14:30:05 +08:00", "… UTC", "…Z".
    Without a zone it is naive (the ticket reads it in the customer's zone)."""
    match = _TIME.search(value)
    if match is None:
        return None
    day = re.split(r"[-/.]", match.group("date"))
    parts = [int(p) for p in match.group("time").split(":")]
    try:
        at = datetime(int(day[0]), int(day[1]), int(day[2]), parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
    except ValueError:
        return None
    zone = (match.group("zone") or "").strip()
    if not zone:
        return at
    if zone.upper() in ("Z", "UTC", "GMT"):
        return at.replace(tzinfo=UTC)
    offset = _ZONE.fullmatch(zone)
    if offset is None:
        return at
    hours, minutes = int(offset.group(2)), int(offset.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    sign = 1 if offset.group(1) == "+" else -1
    return at.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


def fields_in_text(text: str) -> dict[str, Any]:
    """The RTC fields a mail states on lines of their own (the first line for each field wins); values as
    found, bounded: text, a list of user ids, a datetime (naive when the mail gave no zone)."""
    found: dict[str, Any] = {}
    for line in text.replace("\r\n", "\n").split("\n")[:MAX_LINES]:
        if line.lstrip().startswith(">"):
            continue  # a quoted line belongs to someone else's mail
        match = _LINE.match(line[: MAX_VALUE + 40])
        if match is None:
            continue
        name = next(n for n in _LABELS if match.group(n))
        value = match.group("value")[:MAX_VALUE]
        if name == "sdk_version":
            version = _VERSION.search(value)
            if version is not None:
                found.setdefault("sdk_version", version.group(1))
            if (platform := _platform(value)) is not None:
                found.setdefault("platform", platform)
        elif name == "platform":
            found.setdefault("platform", _platform(value) or value.split()[0])
        elif name == "user_ids":
            found.setdefault("user_ids", [u for u in _SPLIT.split(value) if u][:50])
        elif name == "occurred_at":
            if (at := parse_time(value)) is not None:
                found.setdefault("occurred_at", at)
        else:
            found.setdefault(name, value.split()[0] if name == "app_id" else value)
    return found
