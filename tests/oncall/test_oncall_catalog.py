"""The on-call area speaks both languages: every message its pages use is in the zh and the en catalog."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from zhiban.core.i18n import catalog

FEATURES = ("oncall", "incidents", "notify")
TEMPLATE_DIRS = ("oncall", "incidents", "notify")
LITERAL_KEY = re.compile(r"_\('([^']+)'")


def _feature_keys(feature: str, lang: str) -> set[str]:
    path = resources.files(f"zhiban.{feature}").joinpath(f"messages/{lang}.json")
    return set(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("feature", FEATURES)
def test_both_catalogs_have_the_same_messages(feature: str) -> None:
    assert _feature_keys(feature, "zh") == _feature_keys(feature, "en")


def test_every_message_of_the_pages_exists() -> None:
    templates = resources.files("zhiban.web").joinpath("templates")
    used: set[str] = set()
    for folder in TEMPLATE_DIRS:
        for page in templates.joinpath(folder).iterdir():
            # Keys built at render time ('oncall.weekday.' ~ d) end with a dot: their parts are checked by use.
            used |= {k for k in LITERAL_KEY.findall(page.read_text(encoding="utf-8")) if not k.endswith(".")}
    assert len(used) > 100
    for lang in ("zh", "en"):
        missing = sorted(k for k in used if k not in catalog(lang))
        assert not missing, f"{lang}: {missing}"
