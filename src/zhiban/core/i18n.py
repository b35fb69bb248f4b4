"""Message catalogs (zh, en): every string the UI shows comes from here, never from templates."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "en"


@cache
def catalog(lang: str) -> dict[str, str]:
    """The message catalog of a language (falls back to English)."""
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    from zhiban.features import FEATURES

    data: dict[str, str] = {}
    # The core's strings, then each feature's own catalog (features own their UI strings).
    for package in ["zhiban.core", *(f"zhiban.{f}" for f in FEATURES)]:
        try:
            path = resources.files(package).joinpath(f"messages/{lang}.json")
        except ModuleNotFoundError:
            continue
        if path.is_file():
            data.update(json.loads(path.read_text(encoding="utf-8")))
    return data


def translate(lang: str, key: str, **values: Any) -> str:
    """The message for key in lang; an English fallback, then the key itself, so a gap shows plainly."""
    text = catalog(lang).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    return text.format(**values) if values else text


def pick_language(*candidates: str | None) -> str:
    """The first supported language among candidates (cookie, user, Accept-Language...)."""
    for cand in candidates:
        if not cand:
            continue
        for part in cand.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in LANGUAGES:
                return code
    return DEFAULT_LANGUAGE
