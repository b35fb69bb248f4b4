"""The knowledge base's tokenizer is the desk's (`core.text`): articles, tickets and triage cut text the same way."""

from __future__ import annotations

from zhiban.core.text import (
    EN_STOPWORDS,
    MAX_TEXT_CHARS,
    ZH_STOPWORDS,
    cjk_count,
    detect_language,
    stem,
    strip_noise,
    tokenize,
    warm_up,
)

__all__ = [
    "EN_STOPWORDS",
    "MAX_TEXT_CHARS",
    "ZH_STOPWORDS",
    "cjk_count",
    "detect_language",
    "stem",
    "strip_noise",
    "tokenize",
    "warm_up",
]
