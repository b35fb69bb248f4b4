"""Ticket search through the API: p50/p95 of GET /api/v1/tickets?q=... on PostgreSQL and SQLite vs 100 ms.

Run: .venv/bin/python bench/bench_search.py [--tickets 100000] [--replies 1000000] [--db sqlite,postgres]
Seeds a fresh database (migrated by `zhiban migrate`'s code, so SQLite gets the migration's FTS5 table) with
bilingual tickets and replies by bulk insert, cuts their terms as the search follower would (each phrase of the
generated texts cut once by jieba and reused: the follower's own speed is measured apart, on real text), then
starts a real `zhiban web` process and times searches (Chinese, English, mixed; common and rare words; agents
and customers; with filters) over HTTP. PostgreSQL: ZHIBAN_BENCH_POSTGRES_URL (default the test server's `test`
database, in a schema of its own that is dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine

from zhiban.core.clock import SystemClock
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, Role
from zhiban.store.db import make_engine, session_factory, transaction
from zhiban.store.migrate import upgrade
from zhiban.tickets import search
from zhiban.tickets.store import CommentRow, TicketRow, TicketTextRow

P95_TARGET_MS = 100.0
PG_URL = os.environ.get("ZHIBAN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

ZH = [
    "直播间卡顿严重",
    "观众端画面黑屏",
    "主播推流断开",
    "连麦时有回声",
    "声音断断续续",
    "首帧加载很慢",
    "进入频道失败",
    "屏幕共享模糊",
    "云录制文件丢失",
    "录制回放没有声音",
    "美颜插件崩溃",
    "安卓端发热严重",
    "弱网下视频马赛克",
    "音画不同步",
    "白板同步延迟",
    "课堂学生掉线",
    "旁路推流到CDN失败",
    "鉴权token过期",
    "海外用户延迟高",
    "耳机模式下声音小",
    "iOS后台切回后无画面",
    "转码后清晰度下降",
    "弹幕消息丢失",
    "小程序无法拉流",
    "房间人数上限",
    "计费账单有疑问",
    "发票开具",
    "合同续签",
    "需要技术支持电话",
    "网络抖动导致卡顿",
    "码率自适应不生效",
    "摄像头无法打开",
    "麦克风权限被拒绝",
    "SDK升级后编译报错",
    "混流布局错乱",
    "大班课延迟",
    "直播间观众看到绿屏",
]
EN = """Audio is choppy on Android|Black screen for all viewers|joinChannel fails with error 110|Echo when two hosts
co-host|Recording file missing from cloud storage|Token expired after 24 hours|High latency for users in Brazil|Video
freezes on weak network|Screen sharing is blurry|iOS app crashes after SDK upgrade|Whiteboard sync lags for
teachers|Lip sync drifts after ten minutes|CDN push keeps disconnecting|First frame takes five seconds|Invoice
copy needed for last month|Bitrate adaptation does not kick in|Camera fails to open on Windows|Students drop out
of the classroom|Mixed stream layout is wrong|Green screen for some viewers|Please call us back urgently|We see
packet loss above twenty percent|Customer reports robotic voice|Build fails after upgrading to 4.3.2""".replace(
    "\n", " "
).split("|")
LOG = "12:01:33.120 [rtc] onConnectionStateChanged state=5 reason=3 uid=813888 channel=room_{n} err=-17 retry"
QUERIES = [
    ("卡顿", {}),
    ("黑屏", {}),
    ("回声", {"priority": "P1"}),
    ("推流 断开", {}),
    ("云录制 丢失", {"status": "new,open"}),
    ("token 过期", {}),
    ("choppy audio", {}),
    ("error 110", {}),
    ("joinChannel 失败", {}),
    ("whiteboard sync", {"open": "true"}),
    ("robotic voice", {}),
    ("iOS crash", {"priority": "P1,P2"}),
    ("首帧", {"assignee": "none"}),
    ("packet loss", {}),
    ("绿屏 viewers", {}),
    ("发票", {"status": "solved"}),
    ("onConnectionStateChanged", {}),
    ("海外 延迟", {}),
    ("mixed stream layout", {}),
    ("SDK 升级 编译", {}),
]


CHATTER = [
    "您好，我们已收到您的问题",
    "请提供一下日志和频道号",
    "我们正在排查，请稍等",
    "问题已经转给研发同学",
    "请问现在还有这个现象吗",
    "已经发版修复，请升级后再试",
    "谢谢，我们这边确认一下",
    "Thanks for the details, we are looking into it",
    "Could you share the SDK logs and the channel name?",
    "We have escalated this to engineering",
    "Is this still happening on your side?",
    "A fix has been released, please upgrade and retry",
    "Closing this ticket, feel free to reopen",
    "We will get back to you within the hour",
]


def _phrases() -> list[str]:
    return ZH + [p.strip() for p in EN]


def _zipf_pick(rng: random.Random, items: list[str], k: int) -> list[str]:
    # A few problems are common, most are rare: weight 1/rank.
    weights = [1 / (i + 1) for i in range(len(items))]
    return rng.choices(items, weights=weights, k=k)


def _texts(
    rng: random.Random, items: list[str], terms: dict[str, str], low: int, high: int, chatter: int = 0
) -> tuple[str, str]:
    """(text, its terms) of low..high problem phrases and up to `chatter` sentences of a support conversation's
    small talk; 2% carry a long pasted log."""
    chosen = _zipf_pick(rng, items, rng.randint(low, high)) + rng.choices(CHATTER, k=rng.randint(0, chatter))
    rng.shuffle(chosen)
    parts, cut = list(chosen), [terms[p] for p in chosen]
    if rng.random() < 0.02:
        n = rng.randint(20, 60)
        parts += [LOG.format(n=rng.randint(1, 999))] * n
        cut += [terms["LOG"]] * n
    return "。".join(parts), " ".join(cut)


def seed(engine: Engine, n_tickets: int, n_replies: int, rng: random.Random) -> dict[str, str]:
    """Bulk-insert the world; returns API tokens of an agent and of a customer."""
    clock = SystemClock()
    factory = session_factory(engine)
    with transaction(factory) as s:
        orgs = [
            identity.create_organization(
                s, clock, name=f"Org {i}", slug=f"org{i}", plan=("enterprise", "standard")[i % 2]
            )
            for i in range(40)
        ]
        customers = [
            identity.create_person(
                s,
                clock,
                email=f"c{i}@org{i % 40}.test",
                name=f"C{i}",
                role=Role.CUSTOMER,
                organization_id=orgs[i % 40].id,
            )
            for i in range(200)
        ]
        agents = [
            identity.create_person(s, clock, email=f"a{i}@vendor.test", name=f"A{i}", role=Role.AGENT)
            for i in range(20)
        ]
        tokens = {
            "agent": identity.create_token(s, clock, person_id=agents[0].id, name="b", scopes=DEFAULT_SCOPES).plain,
            "customer": identity.create_token(
                s, clock, person_id=customers[0].id, name="b", scopes=DEFAULT_SCOPES
            ).plain,
        }
    items = _phrases()
    terms = {p: search.terms(p) for p in [*items, *CHATTER]} | {"LOG": search.terms(LOG)}
    start = datetime.now(UTC) - timedelta(days=365)
    statuses = ["new", "open", "pending", "on_hold", "solved", "closed"]
    per_ticket = n_replies / n_tickets
    comment_id = 0
    chunk = 5000
    began = time.perf_counter()
    for base in range(0, n_tickets, chunk):
        tickets, comments, texts = [], [], []
        for tid in range(base + 1, min(base + chunk, n_tickets) + 1):
            cust = customers[rng.randrange(len(customers))]
            created = start + timedelta(seconds=tid * 365 * 86400 / n_tickets)
            subject, subject_terms = _texts(rng, items, terms, 1, 1)
            tickets.append(
                {
                    "id": tid,
                    "organization_id": cust.organization_id,
                    "requester_id": cust.id,
                    "subject": subject[:200],
                    "status": rng.choice(statuses),
                    "priority": rng.choice(["P1", "P2", "P3", "P3", "P4"]),
                    "channel": rng.choice(["portal", "api", "email"]),
                    "assignee_id": rng.choice([None, *[a.id for a in agents[:5]]]),
                    "created_at": created,
                    "updated_at": created + timedelta(hours=rng.randint(0, 200)),
                }
            )
            public_cut: list[str] = []
            internal_cut: list[str] = []
            n = 1 + (int(per_ticket) + (1 if rng.random() < per_ticket % 1 else 0) if per_ticket else 0)
            for k in range(n):
                # The first message states the problem; replies mostly talk around it.
                body, cut = _texts(rng, items, terms, 2, 4) if k == 0 else _texts(rng, items, terms, 0, 1, chatter=3)
                public = k == 0 or rng.random() > 0.2
                comment_id += 1
                author = cust.id if k == 0 or rng.random() < 0.4 else agents[rng.randrange(len(agents))].id
                comments.append(
                    {
                        "id": comment_id,
                        "ticket_id": tid,
                        "author_id": author,
                        "body": body,
                        "public": public,
                        "created_at": created + timedelta(minutes=k * 7),
                    }
                )
                (public_cut if public else internal_cut).append(cut)
            texts.append(
                {
                    "ticket_id": tid,
                    "organization_id": cust.organization_id,
                    "subject_terms": subject_terms,
                    "public_terms": " ".join(public_cut),
                    "internal_terms": " ".join(internal_cut),
                    "last_comment_id": comment_id,
                    "indexed_at": created,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(TicketRow), tickets)
            conn.execute(insert(CommentRow), comments)
            conn.execute(insert(TicketTextRow), texts)
        done = min(base + chunk, n_tickets)
        print(f"  seeded {done:,} tickets, {comment_id:,} messages ({time.perf_counter() - began:.0f} s)", flush=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("tickets", "ticket_comments"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
    if engine.dialect.name == "postgresql":  # what the follower does for each batch it cuts: the stored vectors
        started = time.perf_counter()
        with transaction(factory) as s:
            search.set_vectors(s, list(range(1, n_tickets + 1)))
        print(f"  PostgreSQL vectors of {n_tickets:,} tickets stored in {time.perf_counter() - started:.0f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    return tokens


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, var_dir: str) -> Iterator[str]:
    port = _port()
    env = os.environ | {
        "ZHIBAN_DATABASE_URL": url,
        "ZHIBAN_VAR_DIR": var_dir,
        "ZHIBAN_DEMO": "false",
        "ZHIBAN_SIMULATE": "false",
        "ZHIBAN_WEB_PROCS": "1",
        "ZHIBAN_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "zhiban", "web", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("zhiban web did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(base: str, tokens: dict[str, str], rounds: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        for who in ("agent", "customer"):
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            for q, params in QUERIES:  # warm up: jieba's dictionary, the page cache
                http.get("/api/v1/tickets", params={"q": q, **params}, headers=headers).raise_for_status()
            latencies: list[float] = []
            worst = ("", 0.0)
            hits = 0
            for _ in range(rounds):
                for q, params in QUERIES:
                    started = time.perf_counter()
                    r = http.get("/api/v1/tickets", params={"q": q, **params}, headers=headers)
                    ms = (time.perf_counter() - started) * 1000
                    r.raise_for_status()
                    hits += len(r.json()) > 0
                    latencies.append(ms)
                    worst = max(worst, (q, ms), key=lambda w: w[1])
            p50 = statistics.median(latencies)
            p95 = statistics.quantiles(latencies, n=100, method="inclusive")[94]
            print(
                f"  {who:8} n={len(latencies)} p50={p50:.1f} ms p95={p95:.1f} ms max={worst[1]:.1f} ms"
                f" ({worst[0]!r}); {hits}/{len(latencies)} with hits"
                f" (target p95 < {P95_TARGET_MS:.0f} ms, ratio {p95 / P95_TARGET_MS:.2f})"
            )


def follower_speed(engine: Engine, n: int) -> None:
    """The follower's own cost on real text: cut n generated tickets' messages through index_tickets."""
    factory = session_factory(engine)
    with transaction(factory) as s:
        ids = list(s.scalars(text("SELECT id FROM tickets ORDER BY id LIMIT :n").bindparams(n=n)))
        s.execute(
            text(
                "DELETE FROM ticket_texts WHERE ticket_id IN (SELECT id FROM tickets ORDER BY id LIMIT :n)"
            ).bindparams(n=n)
        )
    with transaction(factory) as s:
        messages = s.scalar(text("SELECT count(*) FROM ticket_comments WHERE ticket_id <= :m").bindparams(m=max(ids)))
        started = time.perf_counter()
        search.index_tickets(s, ids, datetime.now(UTC))
        took = time.perf_counter() - started
    print(
        f"  follower: {len(ids)} tickets, {messages} messages cut and stored in {took * 1000:.0f} ms "
        f"({took * 1000 / len(ids):.2f} ms per ticket)"
    )


def run(db: str, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / f"tokens_{db}.json"
        schema = ""
        if db == "postgres":
            schema = f"bench_{args.tickets}_{args.replies}" if args.keep else "bench_" + uuid.uuid4().hex[:8]
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        else:
            url = f"sqlite:///{folder}/bench_{args.tickets}_{args.replies}.db"
        try:
            engine = make_engine(url)
            if args.keep and saved.exists():
                tokens = json.loads(saved.read_text())
                print(f"{db}: reusing the seeded {args.tickets:,} tickets / {args.replies:,} replies in {folder}")
            else:
                upgrade(engine)
                print(f"{db}: seeding {args.tickets:,} tickets and about {args.replies:,} replies")
                tokens = seed(engine, args.tickets, args.replies, rng)
                saved.write_text(json.dumps(tokens))
            follower_speed(engine, 200)
            engine.dispose()
            for base in serve(url, str(folder)):
                measure(base, tokens, args.rounds)
        finally:
            if schema and not args.keep:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            if schema:
                admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--replies", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--keep", help="keep the seeded databases in this folder (and reuse them on the next run)")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the query set per caller")
    args = parser.parse_args()
    for db in args.db.split(","):
        run(db.strip(), args)


if __name__ == "__main__":
    main()
