"""zh↔en RTC glossary: finds known terms in a query and gives their tokens in the other language."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from zhiban.core.errors import InvalidInput
from zhiban.kb.text import tokenize

Phrase = tuple[str, ...]  # the tokens of one way of saying a term


@dataclass(frozen=True)
class GlossaryEntry:
    """One concept: its Chinese and English wordings (the first of each is the preferred one)."""

    zh: tuple[str, ...]
    en: tuple[str, ...]


@dataclass(frozen=True)
class Concept:
    """A term found in a query: its own-language phrasing(s) and the other language's."""

    original: tuple[Phrase, ...]
    translated: tuple[Phrase, ...]


def parse_glossary(text: str) -> list[GlossaryEntry]:
    """Entries of a TSV glossary: `zh<TAB>en`, alternatives separated by `|`, `#` comments."""
    entries: list[GlossaryEntry] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise InvalidInput(f"glossary line {number}: expected 'zh<TAB>en', got {line!r}")
        zh = tuple(t.strip() for t in columns[0].split("|") if t.strip())
        en = tuple(t.strip().lower() for t in columns[1].split("|") if t.strip())
        if not zh or not en:
            raise InvalidInput(f"glossary line {number}: both sides need a term")
        entries.append(GlossaryEntry(zh, en))
    return entries


def _phrases(words: tuple[str, ...]) -> tuple[Phrase, ...]:
    seen: dict[Phrase, None] = {}
    for word in words:
        phrase = tuple(tokenize(word))
        if phrase:
            seen.setdefault(phrase, None)
    return tuple(seen)


def _merge(first: tuple[Phrase, ...], more: tuple[Phrase, ...]) -> tuple[Phrase, ...]:
    return tuple(dict.fromkeys((*first, *more)))


class Glossary:
    """Longest-match term lookup in both directions."""

    def __init__(self, entries: list[GlossaryEntry]) -> None:
        self.entries = entries
        # zh: raw substrings (Chinese has no spaces); en: stemmed token sequences.
        zh_keys: list[tuple[str, int]] = [(z.lower(), i) for i, e in enumerate(entries) for z in e.zh]
        self._zh_keys = sorted(zh_keys, key=lambda k: -len(k[0]))
        en_keys: list[tuple[Phrase, int]] = []
        for i, e in enumerate(entries):
            for phrase in _phrases(e.en):
                en_keys.append((phrase, i))
        self._en_keys = sorted(en_keys, key=lambda k: -len(k[0]))
        self._zh_phrases = [_phrases(e.zh) for e in entries]
        self._en_phrases = [_phrases(e.en) for e in entries]

    def __len__(self) -> int:
        return len(self.entries)

    def find_zh(self, query: str) -> tuple[list[Concept], str]:
        """Concepts named in a Chinese query, and the query with those spans blanked out."""
        rest = query.lower()
        found: list[Concept] = []
        used: set[int] = set()
        for key, index in self._zh_keys:
            if key in rest:
                rest = rest.replace(key, " ")
                if index not in used:
                    used.add(index)
                    # The matched wording first, then its synonyms from the same entry.
                    original = _merge(_phrases((key,)), self._zh_phrases[index])
                    found.append(Concept(original=original, translated=self._en_phrases[index]))
        return found, rest

    def find_en(self, tokens: list[str]) -> tuple[list[Concept], list[str]]:
        """Concepts named in an English token list, and the tokens no concept claimed."""
        taken = [False] * len(tokens)
        found: list[Concept] = []
        used: set[int] = set()
        for phrase, index in self._en_keys:
            n = len(phrase)
            for start in range(len(tokens) - n + 1):
                if tuple(tokens[start : start + n]) == phrase and not any(taken[start : start + n]):
                    for j in range(start, start + n):
                        taken[j] = True
                    if index not in used:
                        used.add(index)
                        original = _merge((phrase,), self._en_phrases[index])
                        found.append(Concept(original=original, translated=self._zh_phrases[index]))
        return found, [t for t, was_taken in zip(tokens, taken, strict=True) if not was_taken]


@lru_cache(maxsize=1)
def default_glossary() -> Glossary:
    """The glossary shipped in zhiban/kb/data/glossary.tsv."""
    text = resources.files("zhiban.kb").joinpath("data/glossary.tsv").read_text("utf-8")
    return Glossary(parse_glossary(text))
