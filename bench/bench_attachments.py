"""Attachment upload and download through the API, against a plain file copy of the same bytes.

    .venv/bin/python bench/bench_attachments.py [--db sqlite|postgres] [--mib 10] [--rounds 10]

A desk in this process (FastAPI's TestClient: the ASGI app, multipart parsing, the ticket's transaction, the blob
store's temporary file, fsync and rename; no network) takes `rounds` uploads of `mib` MiB of random bytes (each
unique, so each is written) and serves each back. Baseline: the same bytes written to a file with fsync and read
back. Printed: median seconds and MiB/s of each, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("ZHIBAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--mib", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(ROOT))
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    import zhiban.store.models  # noqa: F401
    from tests.tenancy import bearer, build_world
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.store.db import Base, make_engine
    from zhiban.web.app import create_app

    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_att_{os.getpid()}"
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            admin = make_engine(POSTGRES_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        settings = Settings(
            database_url=url, var_dir=f"{tmp}/var", demo=False, simulate=False, attachment_max_ticket_bytes=size * 1000
        )
        desk = Desk(settings=settings, engine=engine, secret_key="bench")
        world = build_world(desk)
        ups, downs, base_w, base_r = [], [], [], []
        with TestClient(create_app(desk)) as client:
            headers = bearer(world.alice_token)
            filed = client.post("/api/v1/tickets", json={"subject": "bench", "body": "b"}, headers=headers)
            ticket = filed.json()["id"]
            for n in range(args.rounds):
                data = os.urandom(size)
                start = time.perf_counter()
                answer = client.post(
                    f"/api/v1/tickets/{ticket}/attachments", files={"file": (f"f{n}.bin", data)}, headers=headers
                )
                ups.append(time.perf_counter() - start)
                assert answer.status_code == 201, answer.text
                start = time.perf_counter()
                got = client.get(answer.json()["url"], headers=headers)
                downs.append(time.perf_counter() - start)
                assert got.content == data
                path = Path(tmp) / f"copy{n}"
                start = time.perf_counter()
                with path.open("wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                base_w.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert path.read_bytes() == data
                base_r.append(time.perf_counter() - start)
        engine.dispose()
        if args.db == "postgres":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    mib = size / (1024 * 1024)
    for name, api, base in (("upload", ups, base_w), ("download", downs, base_r)):
        a, b = statistics.median(api), statistics.median(base)
        print(
            f"{args.db} {name} {mib:.0f} MiB: API median {a * 1000:.1f} ms ({mib / a:.0f} MiB/s); "
            f"baseline file {'write+fsync' if name == 'upload' else 'read'} {b * 1000:.1f} ms ({mib / b:.0f} MiB/s); "
            f"ratio API/baseline time {a / b:.1f}x"
        )


if __name__ == "__main__":
    main()
