"""A small real subset of the shared KB corpus, copied with its relative paths, for import tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "kb"
AGORA = "agora-docs-portal/content/docs"
SUBSET = (
    f"{AGORA}/en/api-reference/faq/quality/video_freeze.mdx",
    f"{AGORA}/zh-CN/api-reference/faq/quality/video_freeze.mdx",
    f"{AGORA}/en/api-reference/faq/quality/audio_noaudio.mdx",
    f"{AGORA}/zh-CN/api-reference/faq/quality/audio_noaudio.mdx",
    f"{AGORA}/en/api-reference/faq/integration/token_related_issues.mdx",
    f"{AGORA}/en/api-reference/faq/quality/echo.mdx",
)
VIDEO_FREEZE_ZH = SUBSET[1]


def copy_subset(target: Path) -> Path:
    """Copy the subset under target (same relative paths) and return target; skip if the corpus is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared KB corpus is not at {CORPUS}")
    for relative in SUBSET:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / relative, destination)
    return target
