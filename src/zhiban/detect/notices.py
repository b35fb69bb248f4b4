"""Proactive notices: tell a Premium or Enterprise customer about a degradation before it files a ticket.

One notice per (incident, organization), to each active customer user by e-mail in their language and to
the organization's notice webhook (signed), linking its status page. Idempotency keys make a repeated
sync (a worker killed mid-job, a second metric of the same fault) queue nothing twice.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound
from zhiban.core.i18n import translate
from zhiban.detect.service import SYSTEM, proactive
from zhiban.detect.store import DetectionRow, destination
from zhiban.identity.model import Organization, Person, Principal, Role
from zhiban.notify.model import Message
from zhiban.notify.render import IncidentNotice, render_incident

NOTICE_SUBJECT = "incident_notice"  # not "incident": acknowledging an incident must not cancel customer notices
SEVERITY_WORD = {"critical": "critical", "major": "major", "minor": "minor"}


def _language(value: str) -> Literal["zh", "en"]:
    return "zh" if value == "zh" else "en"


def _where(row: DetectionRow) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(row.slice.items()))


def notice_title(row: DetectionRow, lang: str) -> str:
    """What is affected, in the customer's language."""
    metric = translate(lang, f"detect.metric.{row.metric}")
    key = "detect.notice.title_slice" if row.slice else "detect.notice.title"
    return translate(lang, key, metric=metric, app=row.app_id, where=_where(row))[:200]


def status_url(organization: Organization) -> str:
    from zhiban.status.service import base_url

    return f"{base_url()}/status/org/{organization.slug}"


def _customers(session: Session, organization_id: str) -> list[Person]:
    from zhiban.identity import service as identity

    viewer = Principal(person_id="system", role=Role.CUSTOMER, organization_id=organization_id)
    people = identity.list_people(session, viewer)
    return [identity.person_value(p) for p in people if p.role == Role.CUSTOMER and p.active][:50]


def _message(row: DetectionRow, organization: Organization, lang: str, tz: str, key: str) -> Message:
    notice = IncidentNotice(
        kind="notice",
        title=notice_title(row, lang),
        severity=translate(lang, f"detect.severity.{row.severity}"),
        service=translate(lang, "detect.notice.service", app=row.app_id)[:100],
        since=row.opened_at,
        timezone=tz,
        incident_url=status_url(organization),
    )
    message = render_incident(notice, _language(lang), key)
    metadata = dict(message.metadata) | {
        "app_id": row.app_id,
        "metric": row.metric,
        "slice": _where(row)[:200],
        "detected_by": "telemetry",
    }
    return dataclasses.replace(message, metadata=metadata)


def notify_organization(session: Session, clock: Clock, incident_id: str, row: DetectionRow) -> int:
    """Queue the organization's notice about this incident (once); returns messages newly queued."""
    from zhiban.identity import service as identity
    from zhiban.notify import service as notify

    if row.organization_id is None:
        return 0
    try:
        organization = identity.organization_value(identity.get_organization(session, SYSTEM, row.organization_id))
    except NotFound:
        return 0
    if not proactive(session, organization.plan):
        return 0
    now = clock.now()
    queued = 0
    base = f"detect.notice:{incident_id}:{organization.id}"
    for person in _customers(session, organization.id):
        message = _message(row, organization, person.language, person.timezone, f"{base}:email:{person.id}")
        _, new = notify.queue_message(
            session,
            clock,
            message=message,
            subject_kind=NOTICE_SUBJECT,
            subject_id=incident_id,
            channel="email",
            config={"to": [person.email]},
            due_at=now,
            person_id=person.id,
        )
        queued += new
    hook = destination(session, organization.id, "webhook")
    if hook is not None:
        message = _message(row, organization, organization.language, organization.timezone, f"{base}:webhook")
        _, new = notify.queue_message(
            session,
            clock,
            message=message,
            subject_kind=NOTICE_SUBJECT,
            subject_id=incident_id,
            channel="webhook",
            config=dict(hook.config),
            due_at=now,
        )
        queued += new
    return queued
