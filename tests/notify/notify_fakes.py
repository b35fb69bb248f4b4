"""Real local HTTP servers that answer like Slack, Feishu, DingTalk, WeCom, Twilio and a webhook receiver.

Each one checks what the provider's public documentation says it checks, with the signature formulas
written out again here (not imported from zhiban), so a wrong formula in the code fails the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from zhiban.notify.render import IncidentNotice


@dataclass
class Received:
    """One request the server got."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.raw_query).items()}

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[Received], Reply]


def json_reply(status: int, document: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()


@dataclass
class ProviderServer:
    """A ThreadingHTTPServer on 127.0.0.1:<random>; `responder` decides every answer."""

    responder: Responder
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def url_for(self, path_and_query: str) -> str:
        return self.url + path_and_query


@contextmanager
def provider_server(responder: Responder) -> Iterator[ProviderServer]:
    """Run a server until the block ends."""
    state = ProviderServer(responder)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            parts = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Received("POST", parts.path, parts.query, headers, self.rfile.read(length))
            state.received.append(request)
            status, headers, body = state.responder(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The client may stop reading (a test of bounded reads does that on purpose).
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval makes shutdown quick; the tests start many servers.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SINCE = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # Saturday 03:00 in Shanghai


def page_notice() -> IncidentNotice:
    return IncidentNotice(
        kind="page",
        title="cn-east 视频卡顿率升至 9%（sh-edge-07）",
        severity="P1",
        service="rtc-media",
        since=SINCE,
        ack_url="https://desk.example.com/ack/inc-42?t=abc",
        incident_url="https://desk.example.com/incidents/inc-42",
    )


# --- the providers ---------------------------------------------------------------------------------


def zhiban_webhook_receiver(secret: str, tolerance_s: int = 300) -> Responder:
    """A customer's endpoint: recomputes hex HMAC-SHA256(secret, f"{t}.{body}") and checks t."""

    def respond(request: Received) -> Reply:
        header = request.headers.get("x-zhiban-signature", "")
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        timestamp = fields.get("t", "")
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
            return json_reply(401, {"error": "stale or missing timestamp"})
        if not hmac.compare_digest(expected, fields.get("v1", "")):
            return json_reply(401, {"error": "bad signature"})
        return json_reply(202, {"received": True})

    return respond


def slack_webhook() -> Responder:
    """Slack: 200 "ok"; 400 invalid_payload / no_text; 404 no_service for an unknown hook path."""

    def respond(request: Received) -> Reply:
        if not request.path.startswith("/services/"):
            return 404, {"Content-Type": "text/plain"}, b"no_service"
        try:
            payload = request.json()
        except ValueError:
            return 400, {"Content-Type": "text/plain"}, b"invalid_payload"
        if not payload.get("text") and not payload.get("blocks"):
            return 400, {"Content-Type": "text/plain"}, b"no_text"
        for block in payload.get("blocks", []):
            if block["type"] == "header" and len(block["text"]["text"]) > 150:
                return 400, {"Content-Type": "text/plain"}, b"invalid_blocks"
        return 200, {"Content-Type": "text/plain"}, b"ok"

    return respond


FEISHU_MSG_TYPES = {"text", "post", "image", "share_chat", "interactive"}


def feishu_bot(secret: str | None) -> Responder:
    """Feishu: sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg="")), timestamp in seconds, 1 h window."""

    def respond(request: Received) -> Reply:
        payload = request.json()
        if secret is not None:
            timestamp = str(payload.get("timestamp", ""))
            key = f"{timestamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 3600
            if not fresh or payload.get("sign") != expected:
                msg = "sign match fail or timestamp is not within one hour from current time"
                return json_reply(200, {"code": 19021, "data": {}, "msg": msg})
        if payload.get("msg_type") not in FEISHU_MSG_TYPES:
            return json_reply(200, {"code": 9499, "data": {}, "msg": "Bad Request"})
        if payload["msg_type"] == "interactive" and "card" not in payload:
            return json_reply(200, {"code": 9499, "data": {}, "msg": "Bad Request"})
        if payload["msg_type"] == "text" and not payload.get("content", {}).get("text"):
            return json_reply(200, {"code": 9499, "data": {}, "msg": "Bad Request"})
        return json_reply(200, {"code": 0, "data": {}, "msg": "success"})

    return respond


def dingtalk_robot(access_token: str, secret: str | None) -> Responder:
    """DingTalk: &timestamp=<ms>&sign=urlencode(base64(HMAC-SHA256(secret, f"{ts}\\n{secret}"))), 1 h window."""

    def respond(request: Received) -> Reply:
        query = request.query()
        if query.get("access_token") != access_token:
            return json_reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
        if secret is not None:
            timestamp = query.get("timestamp", "")
            raw_sign = next((p[5:] for p in request.raw_query.split("&") if p.startswith("sign=")), "")
            expected = base64.b64encode(
                hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
            ).decode()
            fresh = timestamp.isdigit() and abs(time.time() * 1000 - int(timestamp)) <= 3_600_000
            # The sign must arrive URL-encoded: a bare "+" would be read as a space.
            encoded = "+" not in raw_sign and "/" not in raw_sign
            if not fresh or not encoded or unquote(raw_sign) != expected:
                return json_reply(200, {"errcode": 310000, "errmsg": "sign not match"})
        payload = request.json()
        msgtype = payload.get("msgtype")
        if msgtype == "markdown":
            ok = bool(payload.get("markdown", {}).get("title")) and bool(payload["markdown"].get("text"))
        elif msgtype == "text":
            ok = bool(payload.get("text", {}).get("content"))
        else:
            ok = False
        if not ok:
            return json_reply(200, {"errcode": 40035, "errmsg": "缺少参数 json"})
        return json_reply(200, {"errcode": 0, "errmsg": "ok"})

    return respond


def wecom_robot(key: str) -> Responder:
    """WeCom: the key in the URL is the credential; markdown.content at most 4096 bytes."""

    def respond(request: Received) -> Reply:
        if request.query().get("key") != key:
            return json_reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
        payload = request.json()
        if payload.get("msgtype") == "markdown":
            content = payload.get("markdown", {}).get("content", "")
            if not content or len(content.encode()) > 4096:
                return json_reply(200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"})
        elif payload.get("msgtype") == "text":
            content = payload.get("text", {}).get("content", "")
            if not content or len(content.encode()) > 2048:
                return json_reply(200, {"errcode": 40058, "errmsg": "text.content exceed max length 2048"})
        else:
            return json_reply(200, {"errcode": 40008, "errmsg": "invalid message type"})
        return json_reply(200, {"errcode": 0, "errmsg": "ok"})

    return respond


def twilio_api(account_sid: str, auth_token: str) -> Responder:
    """Twilio 2010-04-01: basic auth, form-encoded Messages.json / Calls.json, 201 with a sid."""

    def error(status: int, code: int, message: str) -> Reply:
        more = f"https://www.twilio.com/docs/errors/{code}"
        return json_reply(status, {"code": code, "message": message, "more_info": more, "status": status})

    def respond(request: Received) -> Reply:
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {credentials}":
            return error(401, 20003, "Authenticate")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return error(400, 20001, "Unsupported content type")
        form = {key: values[-1] for key, values in parse_qs(request.body.decode()).items()}
        prefix = f"/2010-04-01/Accounts/{account_sid}/"
        if not form.get("To", "").startswith("+") or not form["To"][1:].isdigit():
            return error(400, 21211, f"Invalid 'To' Phone Number: {form.get('To')}")
        if request.path == prefix + "Messages.json":
            if not form.get("Body") or not form.get("From"):
                return error(400, 21602, "Message body is required.")
            sid = "SM" + hashlib.md5(request.body).hexdigest()
            return json_reply(201, {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]})
        if request.path == prefix + "Calls.json":
            try:
                root = ET.fromstring(form.get("Twiml", ""))
            except ET.ParseError:
                return error(400, 21236, "Twiml is invalid")
            if root.tag != "Response" or root.find("Say") is None:
                return error(400, 21236, "Twiml is invalid")
            sid = "CA" + hashlib.md5(request.body).hexdigest()
            return json_reply(201, {"sid": sid, "status": "queued", "to": form["To"]})
        return error(404, 20404, "The requested resource was not found")

    return respond


def self_signed_certificate(folder: Path, name: str, subject_alt_name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key for `name` (e.g. "DNS:x.test" or "IP:127.0.0.1"), made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={subject_alt_name}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
