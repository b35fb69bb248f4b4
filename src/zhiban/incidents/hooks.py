"""Incident subscriptions: pages stop once their incident is acknowledged or resolved; failures go on the timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.incidents.model import IncidentStatus
from zhiban.incidents.service import links_default
from zhiban.incidents.store import IncidentEventRow, IncidentRow
from zhiban.notify import MessageOutcome
from zhiban.notify import service as notify
from zhiban.oncall import service as oncall

if TYPE_CHECKING:
    from zhiban.desk import Desk


def page_still_wanted(session: Session, incident_id: str) -> bool:
    """A page goes out only while its incident is triggered."""
    status = session.scalar(select(IncidentRow.status).where(IncidentRow.id == incident_id))
    return status == IncidentStatus.TRIGGERED


def record_result(session: Session, clock: Clock, row: MessageOutcome) -> None:
    """Failed and unknown pages go on the incident timeline (sent ones are listed from the notifications)."""
    if row.subject_kind == "incident" and row.state in ("failed", "unknown"):
        # `unknown`: an e-mail, SMS or call whose hand-off a crash cut short; it is not repeated, so the
        # responders must see that this person may not have been reached (the auditor reports it too).
        session.add(
            IncidentEventRow(
                incident_id=row.subject_id,
                kind=f"page_{row.state}",
                at=clock.now(),
                body=f"{row.channel}: {(row.last_error or '')[:500]}",
                data={"person": row.person_id, "notification": row.id},
                internal=True,
            )
        )


notify.register_guard("incident", page_still_wanted)
notify.on_result(record_result)


@oncall.on_schedule_delete
def policies_paging(session: Session, schedule_id: str) -> list[str]:
    """A schedule that an escalation policy pages cannot be deleted: that level would page nobody."""
    from zhiban.incidents.service import policies_targeting_schedule

    return policies_targeting_schedule(session, schedule_id)


def _links_from_environment() -> tuple[str, str]:
    """A process without a desk (a bare engine worker) signs links as the environment's desk would."""
    from zhiban.core.settings import get_settings
    from zhiban.desk import secret_key_for

    settings = get_settings()
    return secret_key_for(settings), settings.base_url


links_default(_links_from_environment)


def configure(desk: Desk) -> None:
    """Sign acknowledge links with this desk's key and base URL."""
    from zhiban.incidents.service import configure_links

    configure_links(secret_key=desk.secret_key, base_url=desk.settings.base_url)
    from zhiban.incidents.enqueue import EVENTS_THROTTLE

    EVENTS_THROTTLE.share(desk.settings.web_processes)  # per routing key, across the desk's web processes
