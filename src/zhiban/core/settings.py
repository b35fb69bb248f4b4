"""Settings from the environment (ZHIBAN_*), with safe defaults for the embedded desk."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from typing import Generic, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting; the README's configuration table documents each one."""

    model_config = SettingsConfigDict(env_prefix="ZHIBAN_", extra="ignore")

    database_url: str = Field("sqlite:///var/zhiban.db", description="SQLAlchemy URL of the database")
    bus_url: str = Field("memory://", description="memory:// (in-process) or nats://host:port")
    smtp_url: str = Field("", description="smtp://user:pass@host:port for outgoing mail; empty: mail is logged")
    inbound_smtp_port: int = Field(0, description="port of the inbound SMTP listener; 0: off")
    mail_authserv_id: str = Field(
        "", description="authserv-ids (comma-separated) of the MTA whose Authentication-Results inbound mail trusts"
    )
    mail_verify_dkim: bool = Field(True, description="verify DKIM signatures of inbound mail itself (DNS lookups)")
    host: str = Field("127.0.0.1", description="address the web server binds")
    port: int = Field(8000, description="port the web server binds")
    base_url: str = Field("http://127.0.0.1:8000", description="public URL used in links (mail, pages)")
    secret_key: str = Field("", description="signs sessions and links; empty: a key kept in var/secret_key")
    var_dir: str = Field("var", description="folder for the SQLite database, the secret key and uploads")
    demo: bool = Field(True, description="seed demo data on a first start of `zhiban serve`")
    simulate: bool = Field(True, description="run the RTC traffic simulator inside `zhiban serve`")
    log_level: str = Field("INFO", description="logging level")
    web_processes: int = Field(
        1, ge=1, le=64, description="web processes `zhiban web` / `zhiban serve` run on one port (one per core)"
    )
    worker_concurrency: int = Field(4, description="jobs a worker runs at once")
    job_lease_seconds: int = Field(60, description="how long a claimed job is held before another worker may take it")
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (set behind HTTPS)")
    egress_allow: str = Field(
        "", description="CIDRs and host[:port] names that webhooks may reach although internal (comma-separated)"
    )
    status_subscriptions_per_person: int = Field(20, description="active status-page subscriptions one person may hold")
    status_subscriptions_per_organization: int = Field(
        100, description="active status-page subscriptions the people of one organization may hold together"
    )
    # Request bodies are capped as they stream in (web/limits.py holds the table of route families).
    body_max_api: int = Field(2 * 1024 * 1024, ge=1024, description="largest body for /api/ routes (JSON, iCal)")
    body_max_pages: int = Field(4 * 1024 * 1024, ge=1024, description="largest body for the UI's form posts")
    body_max_integrations: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest body for Alertmanager, webhook and heartbeat integrations"
    )
    body_max_uploads: int = Field(
        52 * 1024 * 1024, ge=1024, description="largest body of an attachment upload (its files and the form's framing)"
    )
    attachment_max_file_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest attachment file")
    attachment_max_ticket_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="largest total of one ticket's attachments (uploads past it get 413)"
    )
    attachment_max_ticket_files: int = Field(100, ge=1, description="most attachment files one ticket holds")
    clock_start: str = Field(
        "", description="tests only: the desk's clock starts at this ISO time and runs at real speed; empty: real time"
    )
    clock_anchor: str = Field(
        "", description="tests only: the real ISO time at which the test clock read clock_start; empty: process start"
    )
    allow_test_clock: bool = Field(False, description="allow clock_start; without it a desk refuses to start on one")
    twilio_url: str = Field(
        "", description="twilio://SID:TOKEN@api.twilio.com?from=%2B1… for SMS and voice pages; empty: no phone channel"
    )
    report_font: str = Field(
        "", description="a CJK font file (path[#face]) for PDF reports; empty: the first known font installed"
    )
    inbox_retention_days: int = Field(
        90, ge=1, le=36_500, description="days a read in-app notice (the agent's inbox) is kept before it is deleted"
    )
    inbox_unread_retention_days: int = Field(
        365, ge=1, le=36_500, description="days an unread in-app notice is kept (never less than a read one's)"
    )
    metrics_token: str = Field(
        "", description="bearer token that /metrics requires; empty: /metrics is off (404), nothing is exposed"
    )


S = TypeVar("S", bound=BaseSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


class SettingsSource(Generic[S]):
    """Where a feature module reads its settings, at each use: the source its feature's `hooks.py` registers.

    Features do not call `get_settings()`: their hooks hand it over (`read_from`), so the composition decides
    where settings come from. Read at each use, never kept: a changed environment (ZHIBAN_SMTP_URL,
    ZHIBAN_EGRESS_ALLOW, ...) is seen at the next save or send. A process that imported no hooks (a script, a
    unit test, a bare engine worker) imports the feature's hooks on first use, as a desk does at start.
    """

    def __init__(self, hooks: str) -> None:
        self.hooks = hooks  # the module that registers the source, e.g. "zhiban.notify.hooks"
        self._read: Callable[[], S] | None = None

    def read_from(self, read: Callable[[], S]) -> None:
        self._read = read

    def __call__(self) -> S:
        if self._read is None:
            importlib.import_module(self.hooks)
            if self._read is None:
                raise RuntimeError(f"settings are not configured: {self.hooks} registered no source")
        return self._read()
