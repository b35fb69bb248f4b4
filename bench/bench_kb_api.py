"""KB search through the desk: p50/p95 of the service (stored index) and of GET /api/v1/kb/search vs 50 ms.

Run: .venv/bin/python bench/bench_kb_api.py [corpus_root]   (default ../shared/data/kb beside the repo)
Imports the corpus into a temporary SQLite database, then times the labelled queries of kb/data/queries.jsonl.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import zhiban.store.models  # noqa: F401  (every table)
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.kb import service
from zhiban.kb.evaluate import default_queries, evaluate_search, format_eval, parse_queries
from zhiban.store.db import Base, make_engine
from zhiban.web.app import create_app

P95_TARGET_MS = 50.0
ROUNDS = 3


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def _report(name: str, latencies: list[float]) -> None:
    p50, p95 = statistics.median(latencies), _p95(latencies)
    print(
        f"{name}: n={len(latencies)} p50={p50:.2f} ms p95={p95:.2f} ms "
        f"(target p95 < {P95_TARGET_MS:.0f} ms, ratio {p95 / P95_TARGET_MS:.2f})"
    )


def main() -> None:
    """Print the figures."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else service.find_corpus()
    if root is None:
        sys.exit("no corpus: pass its path")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        desk = Desk(
            Settings(database_url=url, var_dir=folder, demo=False, simulate=False), engine=engine, secret_key="x"
        )
        started = time.perf_counter()
        with desk.transaction() as session:
            report = service.import_corpus(session, desk.clock, root)
        print(f"import of {report.files} articles (parse, store, index): {time.perf_counter() - started:.1f} s")
        queries = [q.query for q in parse_queries(default_queries())]

        service._cache.clear()
        with Session(engine) as session:
            started = time.perf_counter()
            service.search(session, None, queries[0])
            print(f"first search (loads the stored index, jieba): {(time.perf_counter() - started) * 1000:.0f} ms")
            latencies = []
            for _ in range(ROUNDS):
                for query in queries:
                    t0 = time.perf_counter()
                    service.search(session, None, query)
                    latencies.append((time.perf_counter() - t0) * 1000)
            _report("service.search (public)", latencies)
            print(format_eval(evaluate_search(service.evaluation_index(session), default_queries()), show_misses=False))

        with TestClient(create_app(desk)) as client:
            client.get("/api/v1/kb/search", params={"q": queries[0]})
            latencies = []
            for _ in range(ROUNDS):
                for query in queries:
                    t0 = time.perf_counter()
                    response = client.get("/api/v1/kb/search", params={"q": query, "limit": 5})
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200, response.text
            _report("GET /api/v1/kb/search (in-process HTTP)", latencies)
        engine.dispose()


if __name__ == "__main__":
    main()
