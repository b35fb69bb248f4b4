"""Import of Markdown/MDX articles: front matter, MDX/JSX clean-up, language, title, plain text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from zhiban.core.errors import InvalidInput
from zhiban.kb.text import detect_language

MAX_ARTICLE_BYTES = 2_000_000
ARTICLE_SUFFIXES = (".md", ".mdx")
# Folder files that describe the corpus rather than answer a question.
SKIPPED_NAMES = frozenset({"README.md", "LICENSE", "LICENSE.md"})

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MDX_ESM = re.compile(
    r"^(import\s+.+\s+from\s+['\"].+['\"];?|import\s+['\"].+['\"];?|export\s+(default|const|function|let)\b.*)$"
)
_ADMONITION_OPEN = re.compile(r"^\s*:::\s*(\w+)\s*(?:\[(.*?)\]|(.*))$")
_ADMONITION_CLOSE = re.compile(r"^\s*:::\s*$")
# An HTML/JSX tag (not an <https://...> autolink, not <br>): dropped, its inner text kept.
_TAG = re.compile(r"(?!<br\s*/?>)</?[A-Za-z][\w.\-]*(?:\s+(?:[^<>\"'{}]|\"[^\"]*\"|'[^']*'|\{[^{}]*\})*)?\s*/?>")
# Fumadocs tables reference <Slot for="x">…</Slot> blocks by <Slot name="x" /> in a cell.
_SLOT_BLOCK = re.compile(r'<Slot\s+for="([^"]+)"\s*>(.*?)</Slot>', re.S)
_SLOT_REF = re.compile(r'<Slot\s+name="([^"]+)"\s*/>')
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_HEADING_ID = re.compile(r"\s*\{#[^}]*\}\s*$")
_BLANK_RUNS = re.compile(r"\n{3,}")
_LANG_SEGMENTS = {"zh-cn": "zh", "zh": "zh", "zh-hans": "zh", "en": "en", "en-us": "en"}
# Paths of the same document in each language differ only by these segments (agora, srs docs and srs pages).
_TRANSLATION_RULES = (
    (re.compile(r"/(?:zh-cn|en-us|zh-CN|en|zh)/"), "/{lang}/"),
    (re.compile(r"^srs-docs/(?:src/pages|i18n/\{lang\}/docusaurus-plugin-content-pages)/"), "srs-docs/pages/"),
)

_markdown = MarkdownIt("commonmark").enable("table")

ADMONITION_LABELS = {
    "info": ("Info", "信息"),
    "note": ("Note", "注意"),
    "tip": ("Tip", "提示"),
    "warning": ("Warning", "警告"),
    "caution": ("Caution", "注意"),
    "important": ("Important", "重要"),
    "danger": ("Danger", "危险"),
}


@dataclass(frozen=True)
class ArticleDraft:
    """One imported article, ready to store and index."""

    source_path: str  # relative to the corpus root, with forward slashes
    language: str  # "zh" or "en"
    title: str
    description: str
    tags: tuple[str, ...]
    body_markdown: str  # cleaned Markdown, safe to render
    plain_text: str  # what the index reads
    translation_key: str  # equal for the zh and en versions of one document
    front_matter: dict[str, Any] = field(default_factory=dict)


def split_front_matter(raw: str) -> tuple[dict[str, Any], str]:
    """YAML front matter (as a dict, {} if absent or unreadable) and the remaining Markdown."""
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        meta = None  # a broken header must not lose the article
    return (meta if isinstance(meta, dict) else {}), raw[match.end() :]


def _strip_tags_outside_code(line: str) -> str:
    """Remove HTML/JSX tags from a line but leave `inline code` untouched."""
    out: list[str] = []
    pos = 0
    for code in _INLINE_CODE.finditer(line):
        out.append(_TAG.sub("", line[pos : code.start()]))
        out.append(code.group(0))
        pos = code.end()
    out.append(_TAG.sub("", line[pos:]))
    return "".join(out)


def _admonition_heading(kind: str, title: str, language: str) -> str:
    labels = ADMONITION_LABELS.get(kind.lower(), (kind.capitalize(), kind.capitalize()))
    label = title.strip() or (labels[1] if language == "zh" else labels[0])
    return f"> **{label}**"


def inline_slots(markdown: str) -> str:
    """Put each <Slot for> block's text into the table cell that references it, on one line."""
    blocks = {m.group(1): m.group(2) for m in _SLOT_BLOCK.finditer(markdown)}
    if not blocks:
        return markdown

    def cell(match: re.Match[str]) -> str:
        content = blocks.get(match.group(1), "")
        items = [ln.strip().removeprefix("- ").removeprefix("* ").strip() for ln in content.split("\n")]
        return "<br>".join(i.replace("|", "\\|") for i in items if i)

    return _SLOT_BLOCK.sub("", _SLOT_REF.sub(cell, markdown))


def clean_markdown(markdown: str, language: str = "en") -> str:
    """MDX to plain Markdown: no imports/exports, JSX tags, HTML comments or ::: fences left outside code."""
    text = inline_slots(markdown.replace("\r\n", "\n"))
    lines_out: list[str] = []
    fence: str | None = None
    quote_depth = 0
    in_comment = False
    for line in text.split("\n"):
        prefix = "> " * quote_depth
        fence_match = _FENCE.match(line)
        if fence is not None:
            lines_out.append(prefix + line)
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            continue
        if in_comment:
            if "-->" in line:
                in_comment = False
                line = line.split("-->", 1)[1]
            else:
                continue
        if fence_match:
            fence = fence_match.group(1)
            lines_out.append(prefix + line)
            continue
        line = _HTML_COMMENT.sub("", line)
        if "<!--" in line:
            line, in_comment = line.split("<!--", 1)[0], True
        if _MDX_ESM.match(line.strip()):
            continue
        if _ADMONITION_CLOSE.match(line) and quote_depth:
            quote_depth -= 1
            lines_out.append("")
            continue
        opener = _ADMONITION_OPEN.match(line)
        if opener:
            lines_out.append(
                prefix + _admonition_heading(opener.group(1), opener.group(2) or opener.group(3) or "", language)
            )
            quote_depth += 1
            lines_out.append("> " * quote_depth)
            continue
        cleaned = _strip_tags_outside_code(line)
        if cleaned.strip() == "" and line.strip() != "":
            cleaned = ""  # a line that held only a tag
        lines_out.append((prefix + cleaned) if cleaned else prefix.rstrip())
    body = "\n".join(lines_out)
    return _BLANK_RUNS.sub("\n\n", body).strip() + "\n"


def markdown_to_text(markdown: str) -> str:
    """Plain text of Markdown for indexing: words of headings, paragraphs, tables and code."""
    parts: list[str] = []
    for token in _markdown.parse(markdown):
        if token.type == "inline" and token.children:
            parts.append(" ".join(c.content for c in token.children if c.type in ("text", "code_inline")))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
        elif token.type == "html_block":
            parts.append(_TAG.sub(" ", token.content))
    return "\n".join(p.strip() for p in parts if p.strip())


def first_heading(markdown: str) -> str | None:
    """Text of the first ATX heading outside code, or None."""
    fence: str | None = None
    for line in markdown.split("\n"):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0]:
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue
        heading = _HEADING.match(line)
        if heading:
            return _HEADING_ID.sub("", heading.group(1)).strip()
    return None


def language_from_path(relative: str) -> str | None:
    """'zh'/'en' when a path segment names the language (zh-CN, zh-cn, en, en-us), else None."""
    for segment in relative.split("/")[:-1]:
        lang = _LANG_SEGMENTS.get(segment.lower())
        if lang:
            return lang
    return None


def translation_key(relative: str) -> str:
    """The path with its language segment replaced, shared by a document's zh and en versions."""
    key = relative
    for pattern, replacement in _TRANSLATION_RULES:
        key = pattern.sub(replacement, key, count=1)
    return re.sub(r"\.mdx?$", "", key)


def _title_from_filename(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()


def _as_tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list):
        return tuple(str(t).strip() for t in value if str(t).strip())
    return ()


def parse_text(raw: str, relative: str) -> ArticleDraft:
    """Parse one article's Markdown/MDX source; `relative` is its path inside the corpus."""
    meta, markdown = split_front_matter(raw)
    path_lang = language_from_path(relative)
    language = path_lang or detect_language(markdown)
    body = clean_markdown(markdown, language)
    title_value = meta.get("title") or meta.get("sidebar_label")
    title = str(title_value).strip() if title_value else (first_heading(body) or _title_from_filename(Path(relative)))
    # A body that repeats the title as its H1 would show it twice: drop that heading.
    lines = body.split("\n")
    if lines and _HEADING.match(lines[0]) and first_heading(lines[0]) == title:
        body = "\n".join(lines[1:]).lstrip("\n")
    plain = markdown_to_text(body)
    return ArticleDraft(
        source_path=relative,
        language=language,
        title=title,
        description=str(meta.get("description") or "").strip(),
        tags=_as_tags(meta.get("tags") or meta.get("keywords")),
        body_markdown=body,
        plain_text=plain,
        translation_key=translation_key(relative),
        front_matter={k: v for k, v in meta.items() if isinstance(k, str)},
    )


def parse_article(path: Path, root: Path) -> ArticleDraft:
    """Parse the Markdown/MDX file at `path`; its source path is kept relative to `root`."""
    try:
        relative = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError as exc:
        raise InvalidInput(f"{path} is not inside the corpus root {root}") from exc
    if path.suffix.lower() not in ARTICLE_SUFFIXES:
        raise InvalidInput(f"{relative}: only .md and .mdx articles can be imported")
    size = path.stat().st_size
    if size > MAX_ARTICLE_BYTES:
        raise InvalidInput(f"{relative}: {size} bytes is over the {MAX_ARTICLE_BYTES}-byte article limit")
    try:
        raw = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{relative}: not UTF-8 text") from exc
    return parse_text(raw, relative)


def iter_corpus(root: Path) -> Iterator[ArticleDraft]:
    """Every article under root, in path order (README/LICENSE files skipped)."""
    if not root.is_dir():
        raise InvalidInput(f"corpus root {root} is not a directory")
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in ARTICLE_SUFFIXES and path.name not in SKIPPED_NAMES:
            yield parse_article(path, root)
