"""Browser hardening headers on every response: CSP, no framing, no sniffing, a referrer policy.

Pages load only the desk's own scripts (vendored htmx and uPlot, the feature scripts under /static); JSON
data for charts rides in <script type="application/json">, which CSP does not run. Inline style attributes
stay allowed: the templates use them for layout, and a style cannot run code.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_CSP = CSP.encode()  # /docs too: Swagger UI is served from /static and started by a script file
# Paths whose URL is a credential (one-click acknowledge, subscription links, private feeds): never sent on.
SECRET_URL_PREFIXES = ("/ack/", "/status/subscriptions/", "/status/org/")


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The hardening headers of a response to `path`."""
    referrer = "no-referrer" if path.startswith(SECRET_URL_PREFIXES) else "same-origin"
    return [
        (b"content-security-policy", _CSP),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", referrer.encode()),
    ]


class SecurityHeadersMiddleware:
    """Adds the hardening headers a response does not set itself (plain ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
