"""Pieces of the hotline tests: Twilio's own validator signs each webhook, TwiML is read back with the stdlib, and a
real HTTP server on 127.0.0.1 plays Twilio's REST API for page calls."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
BASE = "https://desk.example.com"  # the desk's public URL: the app itself sees http://testserver behind the proxy
TWILIO_URL = f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@api.twilio.com?from=%2B15550109999"
LINE = "+15550100001"
VOICE = "/api/v1/hotline/twilio/voice"


def post(
    client: TestClient,
    path: str,
    params: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    signed_url: str | None = None,
    signature: str | None = None,
    send: dict[str, str] | None = None,
) -> Any:
    """POST a webhook as Twilio does: the form, signed by twilio's RequestValidator over the public URL."""
    url = signed_url if signed_url is not None else BASE + path
    sig = signature if signature is not None else RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post(path, data=send if send is not None else params, headers=headers)


def shape(element: ET.Element) -> tuple[str, tuple[tuple[str, str], ...], tuple[Any, ...]]:
    """A TwiML element's verbs and attributes, nested (the words said are compared separately)."""
    return (element.tag, tuple(sorted(element.attrib.items())), tuple(shape(child) for child in element))


def parse(twiml: str) -> ET.Element:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root


def said(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter("Say")]


@dataclass
class FakeTwilioApi:
    """Twilio's REST API on 127.0.0.1: accepts Calls.json and answers a call sid, keeping each form."""

    calls: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[FakeTwilioApi]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = parse_qs(body.decode(), keep_blank_values=True)
                api.calls.append(form)
                sid = f"CA{len(api.calls):032d}"
                answer = json.dumps({"sid": sid, "status": "queued"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
