"""Bilingual tokenization for the whole desk (KB search, triage, ticket search): jieba (with an RTC user
dictionary) for Chinese, Snowball stems for English."""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import snowballstemmer

if TYPE_CHECKING:
    import jieba

# CJK Unified Ideographs (+ extension A and compatibility ideographs): what jieba segments.
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")
_RUN = re.compile(f"(?P<cjk>[{_CJK_CLASS}]+)|(?P<word>[A-Za-z0-9][A-Za-z0-9_.\\-]*)")
_LATIN_LETTER = re.compile("[A-Za-z]")
# camelCase / PascalCase / digit boundaries inside one identifier: joinChannel -> join, Channel.
_IDENT_PART = re.compile("[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

MAX_TEXT_CHARS = 2_000_000

_EN_STOPWORDS = """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves im ive dont doesnt cant didnt isnt
    get got please pls hi hello thanks thank help us also may might must shall etc e g ie eg"""
EN_STOPWORDS = frozenset(_EN_STOPWORDS.split())
_ZH_STOPWORDS = """
    的 了 是 在 我 我们 你 你们 他 她 它 他们 这 那 这个 那个 就 都 也 还 和 与 及 或 或者 吗 呢 吧 啊 呀 哦 嗯
    请 请问 一下 怎么 怎么办 怎样 如何 什么 为什么 为何 哪些 哪个 是否 能否 可以 可能 会 要 需要 应该 有 没 把 被 让
    给 对 从 到 向 以 及其 其 之 等 等等 如果 因为 所以 但是 但 而 并 并且 然后 时 时候 一个 一些 很 非常 比较 又 再
    呢 么 个 中 上 下 里 后 前 已经 目前 现在 问题 处理 出现"""
ZH_STOPWORDS = frozenset(_ZH_STOPWORDS.split())

_stemmer = snowballstemmer.stemmer("english")
_jieba_lock = threading.Lock()
_jieba: jieba.Tokenizer | None = None


def _tokenizer() -> jieba.Tokenizer:
    """jieba with the RTC dictionary, built once on first use (loading takes about a second)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba  # imported here: it takes most of a second, and most processes never segment

                jieba.setLogLevel(logging.WARNING)  # jieba logs "Building prefix dict..." at DEBUG/INFO
                tk = jieba.Tokenizer()
                tk.initialize()
                userdict = resources.files("zhiban.core").joinpath("data/rtc_userdict.txt").read_text("utf-8")
                for line in userdict.splitlines():
                    parts = line.split()
                    if parts and not line.startswith("#"):
                        tk.add_word(parts[0], int(parts[1]) if len(parts) > 1 else None)
                _jieba = tk
    return _jieba


def warm_up() -> None:
    """Load jieba now (e.g. at process start) instead of on the first query."""
    _tokenizer()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Lowercased Snowball stem of one English word."""
    return str(_stemmer.stemWord(word.lower()))


def cjk_count(text: str) -> int:
    """Number of Chinese characters in text."""
    return len(_CJK_CHAR.findall(text))


def detect_language(text: str) -> str:
    """'zh' when Chinese characters carry a real share of the text, else 'en'."""
    cjk = cjk_count(text)
    latin = len(_LATIN_LETTER.findall(text))
    # A Chinese character carries about as much as a 4-letter English word: weigh accordingly.
    return "zh" if cjk > 0 and cjk * 4 >= latin * 0.5 else "en"


def _word_tokens(word: str) -> list[str]:
    """Tokens of one ASCII run: the whole identifier plus its parts (joinChannel, UID_CONFLICT, h265)."""
    out: list[str] = []
    for chunk in re.split(r"[.\-]+", word):
        if not chunk:
            continue
        pieces = [p for p in chunk.split("_") if p]
        subparts = [sp for p in pieces for sp in _IDENT_PART.findall(p)]
        lowered = chunk.lower().strip("_")
        if len(subparts) > 1:
            out.append(lowered)  # identifiers and error codes are searched verbatim too
        for sp in subparts:
            low = sp.lower()
            if low.isdigit():
                out.append(low)
            elif len(low) > 1 and low not in EN_STOPWORDS:
                out.append(stem(low))
    return out


def _cjk_tokens(run: str) -> list[str]:
    """jieba search-mode words of one Chinese run, without stop words."""
    return [w for w in _tokenizer().cut_for_search(run) if w.strip() and w not in ZH_STOPWORDS]


# What a ticket or a pasted log line carries that is never evidence: dates, clock times, percentages, long ids
# (uids, channel numbers, masked App IDs), e-mail addresses. Error codes (109, -17, 1033) and versions stay.
_NOISE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # 2024-06-23
    r"|\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"  # 06:04, 12:01:33.120
    r"|\d+(?:\.\d+)?\s*%"  # 20%, 1.5 %
    r"|\b[0-9a-f]*\d[0-9a-f]*\*+"  # f5bed10a**** (a masked App ID)
    r"|(?<![\w.-])\d{5,}(?![\w.-])"  # 813888 (a uid)
    r"|[\w.+-]+@[\w-]+\.[\w.-]+",  # someone@example.com
    re.IGNORECASE,
)


# A long number right after these words is an error code (Twilio Video's 53405, a vendor's 10-digit code), not an
# id: it stays, as the strongest evidence a ticket carries.
_CODE_WORD = re.compile(
    r"(?:error|err|code|errno|错误码|错误代码|错误|报错|代码)\s*(?:code)?\s*[:：#=]?\s*$", re.IGNORECASE
)


def _noise_or_code(match: re.Match[str]) -> str:
    if match.group(0).isdigit() and _CODE_WORD.search(match.string, max(0, match.start() - 24), match.start()):
        return match.group(0)
    return " "


def strip_noise(text: str) -> str:
    """Text without what only looks like evidence (dates, times, percentages, ids, addresses); a long number
    named as an error code stays."""
    return _NOISE.sub(_noise_or_code, text)


def tokenize(text: str) -> list[str]:
    """Index/query terms of mixed Chinese/English text, in order."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
    tokens: list[str] = []
    for match in _RUN.finditer(text):
        cjk = match.group("cjk")
        if cjk is not None:
            tokens.extend(_cjk_tokens(cjk))
        else:
            tokens.extend(_word_tokens(match.group("word")))
    return tokens
