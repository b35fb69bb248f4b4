"""Fuzz the whole HTTP API with schemathesis: no endpoint may answer 5xx to any input.

Usage: uv run python tools/fuzz_api.py [--max-examples N]
Starts a real `zhiban serve` on a fresh SQLite database with the demo data, mints an admin token,
and runs `st run` against /openapi.json with the not_a_server_error check. Exit code is st's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the desk did not become ready at {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp}/fuzz.db",
            "ZHIBAN_VAR_DIR": tmp,
            "ZHIBAN_SIMULATE": "false",
            "ZHIBAN_LOG_LEVEL": "WARNING",
        }
        subprocess.run([BIN / "zhiban", "demo"], env=env, check=True, capture_output=True)
        token = subprocess.run(
            [BIN / "zhiban", "token", "create", "--email", "admin@zhiban.demo", "--scope", "admin"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = _free_port()
        server = subprocess.Popen(
            [BIN / "zhiban", "serve", "--no-demo", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "server.log", "w"),  # noqa: SIM115
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base + "/readyz", 240)  # a bound: at load 10 a desk took over 60 s to start
            cmd = [
                str(BIN / "st"),
                "run",
                base + "/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                # One worker: ast.parse in CPython 3.11.7 is not thread-safe (SystemError in hypothesis).
                "--workers",
                "1",
                # A slow answer on a loaded machine is not a server error: bound each request, but generously
                # (the full suite at load 10-15 saw "Network Error" where the same run alone passed).
                "--request-timeout",
                "60",
                "--no-color",
            ]
            result = subprocess.run(cmd, env=env)
            if result.returncode != 0:
                log = (Path(tmp) / "server.log").read_text()[-4000:]
                print("--- server log (tail) ---\n" + log)
            return result.returncode
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
