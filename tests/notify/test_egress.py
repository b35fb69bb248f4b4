"""The egress guard: no user-given URL reaches loopback, private, link-local, reserved or metadata addresses."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.notify.notify_fakes import Received, Reply, provider_server, self_signed_certificate, unused_port
from zhiban.core.errors import InvalidInput
from zhiban.core.settings import get_settings
from zhiban.notify import Destination, Message, PermanentDeliveryError, RetryableDeliveryError, parse_destination
from zhiban.notify.channels.webhook import WebhookChannel
from zhiban.notify.egress import (
    BlockedDestination,
    EgressPolicy,
    check_url,
    guarded_client,
    is_public,
)

SECRET = "egress-test-secret-0123"
# What the outside probe used, in every spelling of "inside" it tried.
PROBE_URLS = (
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/api/v1/people",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://017700000001/",
    "http://127.1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://localhost:5432/",
    "http://db.localhost/",
    "http://10.0.0.8/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.100.100.200/latest/meta-data/",
    "https://[fe80::1]/",
    "http://[fd00:ec2::254]/",
)


def _ok(_: Received) -> Reply:
    return 200, {"Content-Type": "text/plain"}, b"ok"


def _hook(url: str) -> Destination:
    return parse_destination("webhook", {"url": url, "secret": SECRET})


@pytest.fixture
def no_allowlist(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.31.255.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1", "::1", "::",
     "fe80::1", "fc00::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1",
     "2002:a9fe:a9fe::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
     "2001:db8::1"],
)  # fmt: skip
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    assert not EgressPolicy().allows_address(ip)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert EgressPolicy().allows_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", PROBE_URLS)
def test_every_probe_url_is_refused_when_saved(url: str, no_allowlist: None) -> None:
    with pytest.raises(BlockedDestination) as caught:
        check_url(url)
    assert caught.value.type_ == "blocked-destination" and caught.value.status == 422


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/", "http://user:pw@hooks.example.com/", "http://hooks.example.com@127.0.0.1/",
            "file:///etc/passwd", "http:///nohost", "x" * 3000],
)  # fmt: skip
def test_urls_that_are_not_plain_http_are_refused(url: str, no_allowlist: None) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


def test_allowlist_entries() -> None:
    policy = EgressPolicy.parse(" 10.0.0.0/8, hooks.corp.example:8443 ,*.svc.example, ::1, 169.254.0.0/16")
    assert policy.allows_address(ipaddress.ip_address("10.20.30.40"))
    assert policy.allows_address(ipaddress.ip_address("::1"))
    assert not policy.allows_address(ipaddress.ip_address("192.168.1.1"))
    # Metadata addresses stay refused even inside an allowed network.
    assert not policy.allows_address(ipaddress.ip_address("169.254.169.254"))
    assert policy.allows_host("hooks.corp.example", 8443) and not policy.allows_host("hooks.corp.example", 443)
    assert policy.allows_host("pager.svc.example", 80) and not policy.allows_host("svc.example.evil.test", 80)
    for bad in ("10.0.0.0/33", "http://x/", "host/path", "a b"):
        with pytest.raises(InvalidInput, match="ZHIBAN_EGRESS_ALLOW"):
            EgressPolicy.parse(bad)


def test_a_name_that_does_not_resolve_yet_is_accepted_when_saved(no_allowlist: None) -> None:
    # It is resolved and judged again at every send; refusing it here would only block offline set-ups.
    check_url("https://hooks.slack.com.invalid/services/T/B/X")


def test_a_blocked_url_is_never_contacted(page_en: Message, no_allowlist: None) -> None:
    with provider_server(_ok) as server, guarded_client(timeout=2.0) as client:
        port = server.url.rsplit(":", 1)[1]
        for url in (server.url + "/hook", f"http://2130706433:{port}/hook", f"http://localhost:{port}/hook",
                    f"http://[::ffff:127.0.0.1]:{port}/hook", f"http://0.0.0.0:{port}/hook"):  # fmt: skip
            with pytest.raises(PermanentDeliveryError) as caught:
                WebhookChannel(client).send(page_en, _hook(url))
            assert caught.value.summary == "blocked destination"
        assert server.received == []


def test_the_allowlist_lets_a_real_internal_receiver_through_and_nothing_else(page_en: Message) -> None:
    with provider_server(_ok) as server, provider_server(_ok) as other:
        port = int(server.url.rsplit(":", 1)[1])
        policy = EgressPolicy.parse(f"127.0.0.1:{port}")
        with guarded_client(policy=policy, timeout=2.0) as client:
            assert WebhookChannel(client).send(page_en, _hook(server.url + "/hook")).status == 200
            with pytest.raises(PermanentDeliveryError, match="blocked destination"):
                WebhookChannel(client).send(page_en, _hook(other.url + "/hook"))
        assert len(server.received) == 1 and other.received == []


def test_dns_rebinding_gains_nothing(page_en: Message) -> None:
    """The name answers public when saved and 127.0.0.1 when sent: the send is refused, nothing arrives."""
    answers = ["93.184.215.14", "127.0.0.1"]
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return [answers.pop(0)]

    policy = EgressPolicy(resolver=rebinding)
    with provider_server(_ok) as server:
        port = server.url.rsplit(":", 1)[1]
        url = f"http://hooks.rebind.test:{port}/hook"
        check_url(url, policy)  # saved: the name looked public
        with guarded_client(policy=policy, timeout=2.0) as client, pytest.raises(PermanentDeliveryError) as caught:
            WebhookChannel(client).send(page_en, _hook(url))
        assert caught.value.summary == "blocked destination" and server.received == []
    assert asked == ["hooks.rebind.test", "hooks.rebind.test"]


def test_the_connection_goes_to_the_address_that_was_checked(page_en: Message) -> None:
    """One resolution per connection, and the socket connects to its answer, not to the name again.

    The name exists only in the injected resolver: had the transport resolved it a second time, the system
    resolver would have failed. The receiver still sees the name in the Host header.
    """
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    policy = EgressPolicy.parse("127.0.0.1", resolver=resolver)
    with provider_server(_ok) as server, guarded_client(policy=policy, timeout=2.0) as client:
        port = server.url.rsplit(":", 1)[1]
        WebhookChannel(client).send(page_en, _hook(f"http://receiver.pinned.invalid:{port}/hook"))
    assert asked == ["receiver.pinned.invalid"]
    assert server.received[0].headers["host"] == f"receiver.pinned.invalid:{port}"


@contextmanager
def keep_alive_server() -> Iterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server that keeps connections open; yields its URL and the client port of each request."""
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", ports
    finally:
        server.shutdown()
        server.server_close()


def test_removing_the_allowlist_stops_sends_to_a_url_saved_while_allowed(
    page_en: Message, monkeypatch: pytest.MonkeyPatch
) -> None:
    with keep_alive_server() as (url, ports):
        monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "127.0.0.0/8")
        get_settings.cache_clear()
        channel = WebhookChannel()  # the process's own guarded client, reading the settings
        try:
            check_url(url)
            assert channel.send(page_en, _hook(url)).status == 200
            assert channel.send(page_en, _hook(url)).status == 200
            assert len(set(ports)) == 1  # one kept-alive connection carried both
            monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "")
            get_settings.cache_clear()
            # That connection was vetted under the old allowlist: it must not carry the next send.
            with pytest.raises(PermanentDeliveryError, match="blocked destination"):
                channel.send(page_en, _hook(url))
        finally:
            channel.close()
            get_settings.cache_clear()
        assert len(ports) == 2


def test_a_redirect_to_an_internal_address_is_not_followed(page_en: Message) -> None:
    with provider_server(_ok) as inside:

        def redirect(_: Received) -> Reply:
            return 307, {"Location": inside.url + "/admin"}, b""

        # Both allowed, so only the redirect rule can keep the second server quiet.
        loopback = EgressPolicy.parse("127.0.0.1")
        with (
            provider_server(redirect) as outside,
            guarded_client(policy=loopback, timeout=2.0) as client,
            pytest.raises(PermanentDeliveryError) as caught,
        ):
            WebhookChannel(client).send(page_en, _hook(outside.url + "/hook"))
        assert caught.value.summary == "HTTP 307"
    assert len(outside.received) == 1 and inside.received == []


@pytest.mark.parametrize(
    ("responder_status", "summary", "kind"),
    [(500, "HTTP 500", RetryableDeliveryError), (404, "HTTP 404", PermanentDeliveryError)],
)
def test_an_answer_is_kept_only_as_its_status(
    page_en: Message, responder_status: int, summary: str, kind: type[Exception]
) -> None:
    def leaky(_: Received) -> Reply:
        return responder_status, {"Content-Type": "text/plain"}, b"redis_version:7.2.4 internal secret"

    loopback = EgressPolicy.parse("127.0.0.1")
    with provider_server(leaky) as server, guarded_client(policy=loopback) as client, pytest.raises(kind) as caught:
        WebhookChannel(client).send(page_en, _hook(server.url + "/hook"))
    assert isinstance(caught.value, RetryableDeliveryError | PermanentDeliveryError)
    assert caught.value.summary == summary


def test_transport_failures_are_classified(page_en: Message) -> None:
    loopback = EgressPolicy.parse("127.0.0.1")
    with guarded_client(policy=loopback, timeout=1.0) as client, pytest.raises(RetryableDeliveryError) as refused:
        WebhookChannel(client).send(page_en, _hook(f"http://127.0.0.1:{unused_port()}/hook"))
    assert refused.value.summary == "connection refused" and "Errno" not in str(refused.value)

    def nowhere(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with guarded_client(policy=EgressPolicy(resolver=nowhere)) as client, pytest.raises(RetryableDeliveryError) as dns:
        WebhookChannel(client).send(page_en, _hook("https://hooks.gone.test/x"))
    assert dns.value.summary == "DNS failure"


def test_a_channel_refuses_an_unguarded_client() -> None:
    with httpx.Client() as plain, pytest.raises(TypeError, match="guarded_client"):
        WebhookChannel(plain)


def test_a_broken_allowlist_fails_closed(page_en: Message, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAN_EGRESS_ALLOW", "127.0.0.1, not a host")
    get_settings.cache_clear()
    try:
        with provider_server(_ok) as server:
            with pytest.raises(InvalidInput, match="ZHIBAN_EGRESS_ALLOW"):
                check_url(server.url + "/hook")
            with pytest.raises(PermanentDeliveryError, match="blocked destination"):
                WebhookChannel().send(page_en, _hook(server.url + "/hook"))
        assert server.received == []
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def named_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for receiver.pinned.test only (not for its address), made with openssl."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "receiver.pinned.test", "DNS:receiver.pinned.test")


def test_https_to_the_pinned_address_still_checks_the_certificate_for_the_name(
    page_en: Message, named_certificate: tuple[Path, Path]
) -> None:
    cert, key = named_certificate
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hosts.append(self.headers.get("Host", ""))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    server.socket = server_side.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    port = server.server_address[1]
    trusted = ssl.create_default_context(cafile=str(cert))
    policy = EgressPolicy.parse("127.0.0.1", resolver=lambda host, port: ["127.0.0.1"])
    try:
        with guarded_client(policy=policy, timeout=2.0, ssl_context=trusted) as client:
            sent = WebhookChannel(client).send(page_en, _hook(f"https://receiver.pinned.test:{port}/hook"))
            assert sent.status == 200 and hosts == [f"receiver.pinned.test:{port}"]
            # Same address, another name: the certificate does not match, so nothing is sent.
            with pytest.raises(RetryableDeliveryError) as caught:
                WebhookChannel(client).send(page_en, _hook(f"https://other.pinned.test:{port}/hook"))
            assert caught.value.summary == "TLS error" and len(hosts) == 1
    finally:
        server.shutdown()
        server.server_close()
