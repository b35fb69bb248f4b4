"""Use cases of incidents, the feature's public entry point: re-exports services and escalation policies
(incidents.catalog), the paging chain (incidents.paging), ack/resolve and notes (incidents.lifecycle), alerts
into incidents (incidents.alerts, incidents.alert_batch) and reads (incidents.reads).

Every escalation step is a durable engine timer (`incident.escalate`, dedup key incident × generation ×
step). A step fires once in one transaction: it pages its people (one stored message per person and
contact method, keyed by `step_key`), marks itself done and arms the next step, so a worker killed at
any point either left nothing or left all of it.
"""

from __future__ import annotations

from zhiban.incidents.alert_batch import (
    MAX_TRIGGER_BATCH,
    ingest_group,
    ingest_triggers,
)
from zhiban.incidents.alerts import (
    ingest,
    open_incident,
)
from zhiban.incidents.catalog import (
    create_policy,
    create_service,
    delete_policy,
    find_person,
    find_service,
    get_policy,
    get_service,
    grouping_of,
    list_policies,
    list_services,
    policies_targeting_schedule,
    policy_of,
    service_names,
    services_by_policy,
    system_principal,
    update_policy,
    update_service,
)
from zhiban.incidents.lifecycle import (
    MAX_NOTE,
    ack_timed_out,
    acknowledge,
    acknowledge_as,
    add_note,
    add_responder,
    find_incident_id,
    incident_for_link,
    link_ticket,
    open_incidents_for_org,
    owning_team,
    resolve,
)
from zhiban.incidents.on_duty import (
    FirstPage,
    close_for_ticket,
    first_page,
    is_ticket_incident,
    page_for_ticket,
)
from zhiban.incidents.paging import (
    ACK_LINK_LIFETIME,
    ACK_TIMEOUT_JOB,
    AUDIT_EVERY,
    AUDIT_GRACE,
    AUDIT_JOB,
    ESCALATE_JOB,
    ack_url,
    configure_links,
    ensure_auditor,
    fire_step,
    links_default,
    on_call_for_service,
    page_person,
    start_escalation,
)
from zhiban.incidents.reads import (
    IncidentView,
    TimelineEntry,
    get_incident,
    list_incidents,
    require_staff_for_write,
)

__all__ = [
    "ACK_LINK_LIFETIME",
    "ACK_TIMEOUT_JOB",
    "AUDIT_EVERY",
    "AUDIT_GRACE",
    "AUDIT_JOB",
    "ESCALATE_JOB",
    "MAX_NOTE",
    "MAX_TRIGGER_BATCH",
    "FirstPage",
    "IncidentView",
    "TimelineEntry",
    "ack_timed_out",
    "ack_url",
    "acknowledge",
    "acknowledge_as",
    "add_note",
    "add_responder",
    "close_for_ticket",
    "configure_links",
    "create_policy",
    "create_service",
    "delete_policy",
    "ensure_auditor",
    "find_incident_id",
    "find_person",
    "find_service",
    "fire_step",
    "first_page",
    "get_incident",
    "get_policy",
    "get_service",
    "grouping_of",
    "incident_for_link",
    "ingest",
    "ingest_group",
    "ingest_triggers",
    "is_ticket_incident",
    "link_ticket",
    "links_default",
    "list_incidents",
    "list_policies",
    "list_services",
    "on_call_for_service",
    "open_incident",
    "open_incidents_for_org",
    "owning_team",
    "page_for_ticket",
    "page_person",
    "policies_targeting_schedule",
    "policy_of",
    "require_staff_for_write",
    "resolve",
    "service_names",
    "services_by_policy",
    "start_escalation",
    "system_principal",
    "update_policy",
    "update_service",
]
