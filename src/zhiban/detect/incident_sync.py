"""The `detect.sync` job: a detection opens or joins an incident, and closes its alert when it recovers.

The detector speaks to incidents as an integration does (Events v2 vocabulary) on a service per cause:
"edge <edge>" when the slice names an edge (a platform incident: every customer of that edge, across
apps and organizations, lands in one), else "app <app_id>" (that customer's own). Each detection is one
alert (dedup key = the detection), grouped by cause; the incident resolves when its last alert does,
that is when every metric of that cause has recovered (the engine closes a detection after 3 clean
windows: the hysteresis). The integration is named after the telemetry detector, which is how reports
tell a telemetry-detected incident (detected_by = telemetry) from others; `telemetry_incidents` says it too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound
from zhiban.detect.notices import notify_organization
from zhiban.detect.service import detection_json
from zhiban.detect.store import DetectionRow, IncidentOrganizationRow, TelemetryIncidentRow
from zhiban.engine import JobContext

INTEGRATION_NAME = "zhiban telemetry detector"
SOURCE = "zhiban telemetry detector"
ALERT_SEVERITY = {"critical": "critical", "major": "error", "minor": "warning"}


def cause_of(row: DetectionRow) -> tuple[str, str]:
    """(scope, cause): the edge of the slice if it names one, else the app."""
    edge = row.slice.get("edge")
    return ("edge", edge) if edge else ("app", row.app_id)


def _joined_cause(session: Session, row: DetectionRow) -> tuple[str, str]:
    """The cause of the incident the detection's alert already joined, else its own. The engine may sharpen
    a slice after the alert went out (an edge named a minute later): the alert stays where it is, so that
    its recovery resolves it there rather than on a service it never reached."""
    if row.incident_id is not None:
        joined = session.get(TelemetryIncidentRow, row.incident_id)
        if joined is not None:
            return joined.scope, joined.cause
    return cause_of(row)


def _service(session: Session, clock: Clock, scope: str, cause: str, organization_id: str | None) -> Any:
    from zhiban.incidents import service as incidents
    from zhiban.incidents.integrations import DEMO_POLICY

    name = f"{scope} {cause}"
    try:
        return incidents.get_service(session, name)
    except NotFound:
        pass
    try:
        policy: str | None = incidents.get_policy(session, DEMO_POLICY).id
    except NotFound:
        policy = None
    return incidents.create_service(
        session,
        clock,
        name=name,
        policy=policy,
        urgency_rule="severity",
        organization_id=organization_id if scope == "app" else None,  # an edge is the platform's
        description=f"Created by the telemetry detector for {name}",
    )


def _integration(session: Session, clock: Clock, service_id: str) -> Any:
    from zhiban.incidents.integrations import create_integration, list_integrations

    for row in list_integrations(session, service_id):
        if row.name == INTEGRATION_NAME and row.type == "events-v2":
            return row
    return create_integration(session, clock, type_="events-v2", service_ref=service_id, name=INTEGRATION_NAME)


def _summary(row: DetectionRow) -> str:
    where = ", ".join(f"{k}={v}" for k, v in sorted(row.slice.items()))
    moved = f"{row.metric} {row.direction} {row.baseline:.4g} → {row.observed:.4g}"
    return f"{row.app_id}: {moved}" + (f" ({where})" if where else "") + f", {row.sessions} sessions"


def open_or_join(session: Session, clock: Clock, row: DetectionRow) -> str | None:
    """Trigger the detection's alert: a new incident for its cause, or the open one; returns the incident id."""
    from zhiban.incidents import service as incidents
    from zhiban.incidents.model import AlertEvent

    scope, cause = _joined_cause(session, row)
    service = _service(session, clock, scope, cause, row.organization_id)
    integration = _integration(session, clock, service.id)
    event = AlertEvent(
        action="trigger",
        dedup_key=f"detect:{row.key}"[:255],
        summary=_summary(row)[:1024],
        severity=ALERT_SEVERITY.get(row.severity, "error"),
        source=SOURCE,
        component=row.app_id,
        group=row.metric,
        class_="telemetry",
        group_key=f"telemetry:{scope}:{cause}",
        details=detection_json(row),
    )
    incident = incidents.ingest(session, clock, integration, event)
    if incident is None:
        return row.incident_id  # a repeat of this detection's alert: it is already in its incident
    row.incident_id = incident.id
    if session.get(TelemetryIncidentRow, incident.id) is None:
        session.add(TelemetryIncidentRow(incident_id=incident.id, scope=scope, cause=cause, opened_at=row.opened_at))
    if row.organization_id and session.get(IncidentOrganizationRow, (incident.id, row.organization_id)) is None:
        session.add(
            IncidentOrganizationRow(
                incident_id=incident.id, organization_id=row.organization_id, app_id=row.app_id, since=row.opened_at
            )
        )
    session.flush()
    return str(incident.id)


def recovered(session: Session, clock: Clock, row: DetectionRow) -> None:
    """Resolve the detection's alert; its incident resolves once no alert of it is open."""
    from zhiban.incidents import service as incidents
    from zhiban.incidents.model import AlertEvent

    scope, cause = _joined_cause(session, row)
    try:
        service = incidents.get_service(session, f"{scope} {cause}")
    except NotFound:
        return
    integration = _integration(session, clock, service.id)
    incidents.ingest(session, clock, integration, AlertEvent(action="resolve", dedup_key=f"detect:{row.key}"[:255]))


def sync(ctx: JobContext, payload: dict[str, Any]) -> None:
    """`detect.sync`: bring the incident (and the customer's notice) in line with one detection."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        row = session.get(DetectionRow, str(payload.get("detection", "")))
        if row is not None:
            kind = payload.get("kind")
            if kind in ("opened", "updated") and row.state == "open":
                incident_id = open_or_join(session, clock, row)
                if incident_id is not None:
                    notify_organization(session, clock, incident_id, row)
            elif kind == "closed":
                if row.incident_id is None:
                    open_or_join(session, clock, row)  # opened and closed between two syncs: keep the record
                recovered(session, clock, row)
        ctx.finish(session)
