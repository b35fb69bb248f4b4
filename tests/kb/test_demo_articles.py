"""The demo articles that ship with zhiban: they parse, come in pairs, and answer customers' questions on a fresh
demo desk once the seed job has run."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.handlers import desk_registry
from zhiban.kb import service
from zhiban.kb.parse import iter_corpus
from zhiban.kb.store import ArticleRow

ROOT = service.demo_corpus()
MIN_TOPICS = 40
MIN_WORDS, MAX_WORDS = 150, 600
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

# Written before any search was run on the articles: what customers would type, and the article that answers.
QUESTIONS = [
    ("en", "Doctors on the hospital network cannot join video visits. Which ports and domains must IT open?",
     "firewall-ports"),
    ("en", "Patients on iPad hear their own voice back during doctor calls", "echo"),
    ("en", "Remote audio does not play in Chrome until the viewer clicks somewhere on the page", "web-autoplay"),
    ("en", "Our November invoice shows more minutes than our usage dashboard", "invoice-minutes"),
    ("en", "How do I export the SDK log files to send to support?", "collect-logs"),
    ("zh", "Token 过期后调用 renewToken 仍然报错，无法续期", "token-expired"),
    ("zh", "老师端开始上课后学生看到黑屏，看不到老师的画面", "black-screen"),
    ("zh", "观众看直播画面一卡一卡的，视频卡顿严重", "video-freeze"),
    ("zh", "App 切到后台以后对方就听不到我的声音了", "mobile-background"),
    ("zh", "连上蓝牙耳机后听不到声音，声音还是从手机扬声器出来", "bluetooth"),
]  # fmt: skip


def words(text: str) -> int:
    """Words of an article: Latin words, and Chinese characters at about two to a word."""
    return len(_LATIN_WORD.findall(text)) + len(_CJK.findall(text)) // 2


def topic(source_path: str) -> str:
    return source_path.rsplit("/", 1)[-1].removesuffix(".md")


def test_the_shipped_articles_parse_pair_and_fit() -> None:
    drafts = list(iter_corpus(ROOT))  # raises on any file the importer would refuse
    by_key: dict[str, dict[str, str]] = defaultdict(dict)
    for draft in drafts:
        assert draft.front_matter.get("title") and draft.description, f"{draft.source_path}: title and description"
        assert draft.front_matter.get("category"), f"{draft.source_path}: a category to shelve it on"
        expected = "zh" if "/zh-cn/" in draft.source_path else "en"
        assert draft.language == expected, draft.source_path
        assert draft.body_markdown.count("\n## ") >= 2, f"{draft.source_path}: headings"
        assert MIN_WORDS <= words(draft.plain_text) <= MAX_WORDS, (draft.source_path, words(draft.plain_text))
        assert draft.translation_key not in by_key or draft.language not in by_key[draft.translation_key]
        by_key[draft.translation_key][draft.language] = draft.source_path
    unpaired = sorted(key for key, langs in by_key.items() if set(langs) != {"en", "zh"})
    assert unpaired == []
    assert len(by_key) >= MIN_TOPICS
    # Everything imports: the service's checks (title, body, tags, category lengths) accept every file.
    assert len(service.read_corpus(ROOT)) == len(drafts) == 2 * len(by_key)
    assert {expected for _, _, expected in QUESTIONS} <= {topic(d.source_path) for d in drafts}


def test_the_readme_says_what_the_articles_are() -> None:
    readme = (ROOT / "README.md").read_text("utf-8").replace("*", "").lower()
    assert "written for zhiban" in readme and "apache-2.0" in readme and "../shared" in readme


def _seeded_demo(desk: Desk, clock: FrozenClock) -> None:
    from zhiban.demo.seed import seed_demo_world

    with desk.transaction() as s:
        seed_demo_world(s, clock)
        assert s.scalar(select(func.count()).select_from(ArticleRow)) == 0  # the import is the job's, not the seed's
    clock.advance(timedelta(minutes=1))  # the seed job is due a few seconds after the first start
    worker = Worker(desk.sessions, desk_registry(), clock)
    for _ in range(20):
        if not worker.run_once(limit=50):
            break


@pytest.mark.slow
def test_a_fresh_demo_desk_answers_customers_from_the_shipped_articles(desk: Desk, clock: FrozenClock) -> None:
    _seeded_demo(desk, clock)
    with desk.transaction() as s:
        articles = s.scalars(select(ArticleRow)).all()
        assert len(articles) == len(list(ROOT.rglob("*.md"))) - 1  # every article, not the README
        assert all(a.source_path and a.source_path.startswith("zhiban-demo/") for a in articles)
        missed = []
        for lang, question, expected in QUESTIONS:
            hits = service.search(s, None, question, lang=lang, limit=3)
            found = [topic(s.get(ArticleRow, h.article_id).source_path or "") for h in hits]  # type: ignore[union-attr]
            languages = {h.language for h in hits[:1]}
            if expected not in found or languages != {lang}:
                missed.append((question, expected, found))
        assert missed == []
    # A second run of the seed job (a restart, a retried job) adds nothing and no versions.
    from zhiban.engine import enqueue
    from zhiban.kb.jobs import SEED_DEMO
    from zhiban.kb.store import ArticleVersionRow

    with desk.transaction() as s:
        versions = s.scalar(select(func.count()).select_from(ArticleVersionRow))
        enqueue(s, SEED_DEMO, {}, due_at=clock.now())
    worker = Worker(desk.sessions, desk_registry(), clock)
    assert worker.run_once(limit=5) == 1
    with desk.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ArticleVersionRow)) == versions
        assert s.scalar(select(func.count()).select_from(ArticleRow)) == len(articles)
