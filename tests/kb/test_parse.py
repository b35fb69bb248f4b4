"""Import of Markdown/MDX articles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.kb.parse import clean_markdown, iter_corpus, parse_article, parse_text, translation_key

CORPUS = Path("/work/shared/data/kb")

MDX = """---
title: "How can I fix black screen issues?"
description: Black video on one or both sides
tags: [video, troubleshooting]
---
import Tabs from '@theme/Tabs';

<a id="localblack"></a>
## Reason

<!-- editor note: keep this short -->
:::info[Note]
Call `<Slot>` only after `joinChannel`.
:::

| Information | Details |
| --- | --- |
| Mandatory | <Slot name="x-1" /> |

<Slot for="x-1">

- The channel name.
- The uid | of the user.

</Slot>

```xml
<!-- Declare the service -->
import android.os.Bundle;
```
"""


def test_mdx_components_comments_and_callouts_are_cleaned() -> None:
    article = parse_text(MDX, "agora-docs-portal/content/docs/en/api-reference/faq/quality/video_blank.mdx")
    body = article.body_markdown
    outside_code = re.sub(r"```.*?```", "", body, flags=re.S)
    outside_code = re.sub(r"`[^`]*`", "", outside_code)
    for raw in ("<Slot", "<a id", "<!--", ":::", "import Tabs"):
        assert raw not in outside_code
    assert "> **Note**" in body and "> Call `<Slot>` only after `joinChannel`." in body
    # The slot's list lands in the table cell that referenced it, pipes escaped.
    assert "| Mandatory | The channel name.<br>The uid \\| of the user. |" in body
    # Code blocks are kept verbatim, comments and imports included.
    assert "<!-- Declare the service -->\nimport android.os.Bundle;" in body
    assert "editor note" not in article.plain_text
    assert "The channel name." in article.plain_text


def test_front_matter_fields() -> None:
    article = parse_text(MDX, "agora-docs-portal/content/docs/en/api-reference/faq/quality/video_blank.mdx")
    assert article.title == "How can I fix black screen issues?"
    assert article.description == "Black video on one or both sides"
    assert article.tags == ("video", "troubleshooting")
    assert article.language == "en"


def test_title_falls_back_to_heading_then_filename() -> None:
    from_heading = parse_text("# 低延迟直播\n\n正文内容。\n", "srs/notes/low.md")
    assert from_heading.title == "低延迟直播"
    assert from_heading.language == "zh"  # no language in the path: detected from the text
    assert not from_heading.body_markdown.startswith("#")  # the H1 is not shown twice
    from_name = parse_text("Just text, no heading.\n", "docs/port-checks.md")
    assert from_name.title == "Port checks"


def test_broken_front_matter_keeps_the_article() -> None:
    article = parse_text("---\ntitle: [unclosed\n---\n# Heading\n", "x/en/a.md")
    assert article.title == "Heading"


def test_translation_keys_pair_language_versions() -> None:
    agora = "agora-docs-portal/content/docs/{}/api-reference/faq/quality/video_blank.mdx"
    assert translation_key(agora.format("en")) == translation_key(agora.format("zh-CN"))
    srs = "srs-docs/i18n/{}/docusaurus-plugin-content-docs/current/doc/hls.md"
    assert translation_key(srs.format("en-us")) == translation_key(srs.format("zh-cn"))
    assert translation_key("srs-docs/src/pages/faq.md") == translation_key(
        "srs-docs/i18n/zh-cn/docusaurus-plugin-content-pages/faq.md"
    )
    assert translation_key(srs.format("en-us")) != translation_key(agora.format("en"))


def test_parse_article_refuses_files_outside_root_and_wrong_types(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    outside = tmp_path / "a.md"
    outside.write_text("# A\n")
    with pytest.raises(InvalidInput):
        parse_article(outside, root)
    text_file = root / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(InvalidInput):
        parse_article(text_file, root)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_whole_corpus_imports_cleanly() -> None:
    articles = list(iter_corpus(CORPUS))
    assert len(articles) == 288  # the corpus README's count
    assert sum(a.language == "zh" for a in articles) == 110
    assert all(a.title for a in articles)
    for article in articles:
        outside_code = re.sub(r"(```|~~~).*?\1", "", article.body_markdown, flags=re.S)
        outside_code = re.sub(r"`[^`]*`", "", outside_code)
        assert "<Slot" not in outside_code, article.source_path
        assert "<!--" not in outside_code, article.source_path
        assert not re.search(r"^\s*:::", outside_code, flags=re.M), article.source_path


def test_clean_markdown_keeps_autolinks_and_plain_angle_brackets() -> None:
    cleaned = clean_markdown("See <https://example.com> when a < b and <font color='red'>red</font>.\n")
    assert cleaned == "See <https://example.com> when a < b and red.\n"
