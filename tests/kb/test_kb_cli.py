"""`zhiban kb` and `zhiban triage` on a temporary SQLite database, run in-process as the installed command runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.kb.kb_kit import SUBSET, copy_subset
from tests.zhiban_cli import Ran, zhiban
from zhiban.store.db import Base, make_engine

TICKETS = Path(__file__).resolve().parents[2] / "src" / "zhiban" / "triage" / "data" / "tickets.jsonl"


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A SQLite file with the schema, as `zhiban migrate` would leave it."""
    import zhiban.store.models  # noqa: F401

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def _run(url: str, *args: str, cwd: Path) -> Ran:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": url, "COLUMNS": "200"}
    return zhiban(*args, env=env, cwd=cwd)


def test_import_eval_and_bad_files(database: str, tmp_path: Path) -> None:
    corpus = copy_subset(tmp_path / "kb")
    first = _run(database, "kb", "import", str(corpus), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"imported {len(SUBSET)} files: {len(SUBSET)} new, 0 changed, 0 unchanged" in first.stdout

    labelled = tmp_path / "queries.jsonl"
    labelled.write_text(
        '{"query": "视频画面卡顿怎么办", "relevant": ["' + SUBSET[1] + '", "' + SUBSET[0] + '"]}\n'
        '{"query": "best pizza recipe in Naples", "relevant": []}\n',
        "utf-8",
    )
    result = _run(database, "kb", "eval", str(labelled), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "kb recall@3=1.000 mrr=1.000 n=2"

    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        '{"subject": "视频卡顿", "body": "观众端视频画面卡顿，帧率很低", "answers": ["'
        + SUBSET[1]
        + '", "'
        + SUBSET[0]
        + '"], "split": "tune"}\n'
        '{"subject": "Invoice", "body": "Please send the invoice for May. Regards, Ana", "answers": [],'
        ' "split": "heldout"}\n',
        "utf-8",
    )
    compared = _run(database, "kb", "eval", "--no-misses", str(tickets), cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    table = [line.split() for line in compared.stdout.strip().splitlines()]
    assert table[0][:3] == ["split", "ranking", "answerable"]
    assert [row[:2] for row in table[1:5]] == [
        ["tune", "search"],
        ["tune", "bm25"],
        ["heldout", "search"],
        ["heldout", "bm25"],
    ]
    assert table[1][2:5] == ["1", "1.000", "1.000"]  # the Chinese ticket finds its article first
    assert table[3][-2:] == ["1", "1.000"] and table[4][-2:] == ["1", "0.000"]  # BM25 never says "no answer"
    assert compared.stdout.strip().splitlines()[-1] == "kb recall@3=1.000 mrr=1.000 n=2"

    bad_ticket = tmp_path / "bad_ticket.jsonl"
    bad_ticket.write_text('{"subject": "x", "body": "y", "answers": [], "split": "train"}\n', "utf-8")
    refused = _run(database, "kb", "eval", str(bad_ticket), cwd=tmp_path)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.strip() == "error: ticket line 1: split must be one of tune, heldout, got 'train'"

    bad_queries = tmp_path / "bad.jsonl"
    bad_queries.write_text('{"query": "x"}\n', "utf-8")
    refused = _run(database, "kb", "eval", str(bad_queries), cwd=tmp_path)
    assert refused.returncode != 0 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and refused.stderr.startswith("error: query line 1")

    broken = tmp_path / "broken" / "article.md"
    broken.parent.mkdir()
    broken.write_bytes(b"# Title\n\xff\xfe")
    failed = _run(database, "kb", "import", str(broken.parent), cwd=tmp_path)
    assert failed.returncode != 0
    assert [ln for ln in failed.stderr.splitlines() if ln.startswith("error:")] == ["error: article.md: not UTF-8 text"]
    assert not (tmp_path / "var").exists()  # the commands keep nothing in the working folder


def test_triage_eval_prints_the_confusion_table_then_accuracy(database: str, tmp_path: Path) -> None:
    held_out = _run(database, "triage", "eval", "--held-out", str(TICKETS), cwd=tmp_path)
    assert held_out.returncode == 0, held_out.stderr
    lines = held_out.stdout.strip().splitlines()
    assert lines[-1].startswith("triage accuracy=") and lines[-1].endswith("n=57")
    assert lines[-2].startswith("server_deployment")  # the confusion table comes before the figure
