"""KB search and triage benchmark: index build time, search p50/p95 vs the 50 ms target, quality figures.

Run: .venv/bin/python bench/bench_kb.py [corpus_root]   (default /work/shared/data/kb)

Whole tickets (kb/data/tickets_v2.jsonl, subject + body as suggestions search them) are timed on every ticket;
their quality is printed for the tune half only: the held-out half is reported by `zhiban kb eval`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from zhiban.kb.evaluate import (
    compare,
    default_queries,
    default_ticket_set,
    evaluate_search,
    format_comparison,
    format_eval,
    outcomes_of,
    parse_queries,
    search_ranking,
)
from zhiban.kb.parse import iter_corpus
from zhiban.kb.search import Document, SearchIndex
from zhiban.kb.text import warm_up
from zhiban.triage.evaluate import default_tickets, evaluate_examples, format_triage, held_out_split
from zhiban.triage.model import TriageModel, parse_examples

P95_TARGET_MS = 50.0
ROUNDS = 5
TICKET_ROUNDS = 3


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    """Print the figures."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data/kb")
    started = time.perf_counter()
    warm_up()
    jieba_s = time.perf_counter() - started
    started = time.perf_counter()
    articles = list(iter_corpus(root))
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    index = SearchIndex.build(
        Document(a.source_path, a.language, a.title, a.plain_text, a.translation_key) for a in articles
    )
    build_s = time.perf_counter() - started
    documents, postings = index.to_rows()
    print(
        f"corpus: {len(articles)} articles; jieba load {jieba_s:.2f} s, parse {parse_s:.2f} s, "
        f"index build {build_s:.2f} s"
    )
    print(f"index rows: {len(documents)} documents, {len(postings)} postings")

    lines = default_queries()
    queries = [q.query for q in parse_queries(lines)]
    index.search(queries[0])  # first query builds the fuzzy-match buckets
    latencies: list[float] = []
    for _ in range(ROUNDS):
        for query in queries:
            t0 = time.perf_counter()
            index.search(query)
            latencies.append((time.perf_counter() - t0) * 1000)
    p50, p95 = statistics.median(latencies), _percentile(latencies, 95)
    print(
        f"search over {len(queries)} queries x {ROUNDS}: p50={p50:.2f} ms p95={p95:.2f} ms "
        f"(target p95 < {P95_TARGET_MS:.0f} ms, ratio {p95 / P95_TARGET_MS:.2f})"
    )
    result = evaluate_search(index, lines)
    half_a = evaluate_search(index, lines[0::2])
    half_b = evaluate_search(index, lines[1::2])
    print(
        f"recall@3 on the half used for the parameter sweep {half_a.recall_at_3:.3f}, "
        f"on the other half {half_b.recall_at_3:.3f}"
    )
    print(format_eval(result, show_misses=False))

    tickets = parse_queries(default_ticket_set())
    latencies = []
    for _ in range(TICKET_ROUNDS):
        for ticket in tickets:
            t0 = time.perf_counter()
            index.search(ticket.query)
            latencies.append((time.perf_counter() - t0) * 1000)
    p50, p95 = statistics.median(latencies), _percentile(latencies, 95)
    print(f"search over {len(tickets)} whole tickets x {TICKET_ROUNDS}: p50={p50:.2f} ms p95={p95:.2f} ms")
    tune = [t for t in tickets if t.split == "tune"]
    print(format_comparison(compare({"search": outcomes_of(search_ranking(index), tune)})))
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    examples = parse_examples(default_tickets())
    train, test = held_out_split(examples)
    started = time.perf_counter()
    model = TriageModel.train(train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    triage = evaluate_examples(model, test)
    predict_ms = (time.perf_counter() - started) * 1000 / triage.n
    print(
        f"triage: trained on {len(train)} tickets in {train_s:.2f} s; {predict_ms:.1f} ms per prediction; "
        f"held out {len(test)}"
    )
    print(format_triage(triage))


if __name__ == "__main__":
    main()
