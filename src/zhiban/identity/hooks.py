"""Identity tells the web shell who a bearer token or a session cookie is (at start-up, before any request)."""

from __future__ import annotations

from zhiban.identity import service
from zhiban.web.deps import authenticate_with

authenticate_with(token=service.resolve_token, web_session=service.resolve_web_session)
