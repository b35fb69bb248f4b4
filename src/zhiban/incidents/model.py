"""The incident domain, pure: statuses, normalized alert events, urgency rules, stored policies, ack tokens."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from zhiban.core.errors import InvalidInput
from zhiban.incidents.escalation import (
    EscalationLevel,
    EscalationPolicy,
    LevelCondition,
    Target,
    TargetKind,
    Urgency,
)
from zhiban.oncall.model import DailyWindow, Restriction, WeeklyWindow

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")
URGENCY_RULES = ("high", "low", "severity")
INTEGRATION_TYPES = ("events-v2", "alertmanager", "webhook", "heartbeat")
MAX_SUMMARY = 1024
MAX_SHORT = 255
MAX_LINKS = 20


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def can_acknowledge(status: str) -> bool:
    """Only a triggered incident can be acknowledged (an acknowledged one just stays so)."""
    return status == IncidentStatus.TRIGGERED


def is_open(status: str) -> bool:
    return status != IncidentStatus.RESOLVED


@dataclass(frozen=True)
class AlertEvent:
    """One alert event from any integration, normalized to the Events v2 vocabulary."""

    action: str
    dedup_key: str
    summary: str = ""
    severity: str = "error"
    source: str = ""
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    fingerprint: str | None = None
    # The incident grouping key: alerts with one group key share an incident (Alertmanager's groupKey).
    group_key: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class EventRejected(InvalidInput):
    """An event that fails validation; `errors` lists each reason (Events v2 answers them all)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _text(value: Any, name: str, limit: int, errors: list[str], required: bool = False) -> str | None:
    if value is None:
        if required:
            errors.append(f"'{name}' is missing or blank")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        errors.append(f"'{name}' must be a non-blank string" if required else f"'{name}' must be a string")
        return None
    if len(value) > limit:
        errors.append(f"'{name}' is longer than {limit} characters")
        return None
    if "\x00" in value:
        errors.append(f"'{name}' must not contain NUL characters")
        return None
    return value


def _links(value: Any, name: str, keys: tuple[str, ...], errors: list[str]) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_LINKS:
        errors.append(f"'{name}' must be a list of at most {MAX_LINKS} objects")
        return []
    found = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get(keys[0]), str) or len(item[keys[0]]) > 2000:
            errors.append(f"each of '{name}' needs a string '{keys[0]}'")
            return []
        found.append({k: str(item[k])[:1024] for k in keys if isinstance(item.get(k), str)})
    return found


def parse_events_v2(doc: Any, new_dedup_key: str) -> tuple[str, AlertEvent]:
    """(routing_key, event) from a PagerDuty Events API v2 body; EventRejected lists every problem."""
    errors: list[str] = []
    if not isinstance(doc, dict):
        raise EventRejected(["the body must be a JSON object"])
    routing_key = _text(doc.get("routing_key"), "routing_key", 64, errors, required=True)
    action = doc.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup_key = _text(doc.get("dedup_key"), "dedup_key", MAX_SHORT, errors)
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required to {action}")
    payload = doc.get("payload")
    summary, severity, source = "", "error", ""
    component = group = class_ = None
    details: dict[str, Any] = {}
    if action == "trigger" or payload is not None:
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
            payload = {}
        summary = _text(payload.get("summary"), "payload.summary", MAX_SUMMARY, errors, required=True) or ""
        source = _text(payload.get("source"), "payload.source", MAX_SHORT, errors, required=True) or ""
        severity = str(payload.get("severity"))
        if severity not in SEVERITIES:
            errors.append("'payload.severity' must be one of critical, error, warning, info")
            severity = "error"
        component = _text(payload.get("component"), "payload.component", MAX_SHORT, errors)
        group = _text(payload.get("group"), "payload.group", MAX_SHORT, errors)
        class_ = _text(payload.get("class"), "payload.class", MAX_SHORT, errors)
        timestamp = payload.get("timestamp")
        if timestamp is not None:
            if not isinstance(timestamp, str):
                errors.append("'payload.timestamp' must be an ISO 8601 string")
            else:
                try:
                    datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
                except ValueError:
                    errors.append("'payload.timestamp' is not an ISO 8601 time")
                else:
                    details["timestamp"] = timestamp
        custom = payload.get("custom_details")
        if custom is not None:
            details["custom_details"] = custom
    links = _links(doc.get("links"), "links", ("href", "text"), errors)
    images = _links(doc.get("images"), "images", ("src", "href", "alt"), errors)
    if links:
        details["links"] = links
    if images:
        details["images"] = images
    for name in ("client", "client_url"):
        value = _text(doc.get(name), name, 2000, errors)
        if value:
            details[name] = value
    if errors:
        raise EventRejected(errors)
    assert routing_key is not None and isinstance(action, str)
    key = dedup_key or new_dedup_key
    event = AlertEvent(
        action=action,
        dedup_key=key,
        summary=summary,
        severity=str(severity),
        source=source,
        component=component,
        group=group,
        class_=class_,
        group_key=key,
        details=details,
    )
    return routing_key, event


def parse_alertmanager(doc: Any) -> list[AlertEvent]:
    """The events in an Alertmanager webhook (version 4): one per alert, grouped by `groupKey`."""
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object")
    if str(doc.get("version", "4")) != "4":
        raise InvalidInput("only Alertmanager webhook version 4 is understood")
    group_key = doc.get("groupKey")
    alerts = doc.get("alerts")
    if not isinstance(group_key, str) or not group_key or len(group_key) > 512:
        raise InvalidInput("'groupKey' must be a string of 1 to 512 characters")
    # No count limit: Alertmanager never retries a 4xx, so a storm's large group must be taken whole.
    # The body's size is bounded at the edge (ZHIBAN_BODY_MAX_INTEGRATIONS).
    if not isinstance(alerts, list) or not alerts:
        raise InvalidInput("'alerts' must be a non-empty list of alerts")
    common: dict[str, Any] = doc["commonLabels"] if isinstance(doc.get("commonLabels"), dict) else {}
    events = []
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise InvalidInput(f"alerts[{index}] must be an object")
        labels: dict[str, Any] = alert["labels"] if isinstance(alert.get("labels"), dict) else {}
        annotations: dict[str, Any] = alert["annotations"] if isinstance(alert.get("annotations"), dict) else {}
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not 1 <= len(fingerprint) <= 128:
            raise InvalidInput(f"alerts[{index}].fingerprint must be a string of 1 to 128 characters")
        status = alert.get("status", doc.get("status"))
        if status not in ("firing", "resolved"):
            raise InvalidInput(f"alerts[{index}].status must be firing or resolved")
        name = str(labels.get("alertname") or common.get("alertname") or "alert")
        summary = str(annotations.get("summary") or annotations.get("description") or name)
        severity = str(labels.get("severity", "error")).lower()
        events.append(
            AlertEvent(
                action="trigger" if status == "firing" else "resolve",
                dedup_key=fingerprint,
                summary=summary[:MAX_SUMMARY],
                severity=severity if severity in SEVERITIES else "error",
                source=str(labels.get("instance") or labels.get("job") or "alertmanager")[:MAX_SHORT],
                component=str(labels["job"])[:MAX_SHORT] if "job" in labels else None,
                group=name[:MAX_SHORT],
                fingerprint=fingerprint,
                group_key=group_key,
                details={
                    "labels": {str(k)[:200]: str(v)[:1000] for k, v in list(labels.items())[:100]},
                    "annotations": {str(k)[:200]: str(v)[:4000] for k, v in list(annotations.items())[:50]},
                    "startsAt": str(alert.get("startsAt", ""))[:64],
                    "generatorURL": str(alert.get("generatorURL", ""))[:2000],
                },
            )
        )
    return events


def parse_generic(doc: Any) -> AlertEvent:
    """A generic JSON webhook: {"title", "status": "trigger|resolve", "dedup_key"?, "severity"?, "details"?}."""
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object")
    errors: list[str] = []
    title = _text(doc.get("title"), "title", MAX_SUMMARY, errors, required=True) or ""
    status = doc.get("status", "trigger")
    if status not in ("trigger", "resolve", "acknowledge"):
        errors.append("'status' must be trigger, acknowledge or resolve")
    dedup_key = _text(doc.get("dedup_key"), "dedup_key", MAX_SHORT, errors) or title[:MAX_SHORT]
    severity = doc.get("severity", "error")
    if severity not in SEVERITIES:
        errors.append("'severity' must be one of critical, error, warning, info")
    details = doc.get("details", {})
    if not isinstance(details, dict):
        errors.append("'details' must be an object")
    if errors:
        raise EventRejected(errors)
    return AlertEvent(
        action=str(status),
        dedup_key=dedup_key,
        summary=title,
        severity=str(severity),
        source=str(doc.get("source", "webhook"))[:MAX_SHORT],
        group_key=dedup_key,
        details={"details": details},
    )


def urgency_for(rule: str, severity: str) -> Urgency:
    """The urgency a service's rule gives an alert: `severity` pages critical and error at once."""
    if rule == "high":
        return Urgency.HIGH
    if rule == "low":
        return Urgency.LOW
    if rule == "severity":
        return Urgency.HIGH if severity in ("critical", "error") else Urgency.LOW
    raise InvalidInput(f"urgency rule must be one of {URGENCY_RULES}")


# --- storm grouping: many alerts, few incidents ----------------------------------------------------

GROUPING_RULES = ("off", "service", "fields")
MAX_GROUPING_FIELDS = 10
MAX_GROUPING_WINDOW = 24 * 60
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EVENT_FIELDS = {"source", "component", "group", "class", "severity"}


@dataclass(frozen=True)
class GroupingRule:
    """How a service folds a storm's new alerts into few incidents (off by default: an incident per alert).

    `service`: every new alert joins the service's open grouped incident; `fields`: alerts with the same
    values of `fields` (an event field: source, component, group, class, severity; else an Alertmanager label
    or an Events v2 custom detail) join one. With `window_minutes`, only an incident opened that recently is
    joined, later alerts open the next one; 0 joins while the incident is open.
    """

    rule: str = "off"
    fields: tuple[str, ...] = ()
    window_minutes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.rule not in GROUPING_RULES:
            raise InvalidInput(f"grouping must be one of {GROUPING_RULES}")
        if self.rule == "fields" and not 1 <= len(self.fields) <= MAX_GROUPING_FIELDS:
            raise InvalidInput(f"grouping by fields needs 1 to {MAX_GROUPING_FIELDS} field names")
        if self.rule != "fields" and self.fields:
            raise InvalidInput("grouping fields apply to the 'fields' rule only")
        for name in self.fields:
            if not isinstance(name, str) or not _FIELD_NAME.match(name):
                raise InvalidInput("a grouping field is 1-64 characters of letters, digits, '_', '.', '-'")
        window = self.window_minutes
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= MAX_GROUPING_WINDOW:
            raise InvalidInput(f"grouping window is 0 (while open) to {MAX_GROUPING_WINDOW} minutes")

    def group_key(self, event: AlertEvent) -> str | None:
        """The incident group a new alert joins under this rule; None when the rule leaves the alert's own."""
        if self.rule == "service":
            return "storm:service"
        if self.rule == "fields":
            values = json.dumps([_field_value(event, name) for name in self.fields], ensure_ascii=False)
            # Bounded whatever the values: the group key column holds 512 characters.
            return "storm:fields:" + hashlib.sha256(values.encode()).hexdigest()
        return None

    def describe(self) -> dict[str, Any]:
        """What an incident opened under this rule shows: the rule, its fields and its window."""
        return {"rule": self.rule, "fields": list(self.fields), "window_minutes": self.window_minutes}


# An incident that groups a sender's own group (an Alertmanager groupKey) with no rule of the service's.
SENDER_GROUP = {"rule": "sender_group", "fields": [], "window_minutes": 0}


def _field_value(event: AlertEvent, name: str) -> str:
    if name in _EVENT_FIELDS:
        value = getattr(event, "class_" if name == "class" else name)
        return "" if value is None else str(value)
    for holder in ("labels", "custom_details"):
        found = event.details.get(holder)
        if isinstance(found, Mapping) and name in found:
            return str(found[name])[:1000]
    return ""


# --- escalation policies as stored JSON ----------------------------------------------------------


def _clock_time(value: Any, what: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a time of day like 09:00") from exc


def _window(spec: Any) -> Restriction:
    if not isinstance(spec, dict):
        raise InvalidInput("a condition window is an object")
    if "start_weekday" in spec:
        return WeeklyWindow(
            int(spec["start_weekday"]),
            _clock_time(spec.get("start"), "window start"),
            int(spec.get("end_weekday") or spec["start_weekday"]),
            _clock_time(spec.get("end"), "window end"),
        )
    weekdays = spec.get("weekdays", list(range(7)))
    if not isinstance(weekdays, list) or not all(isinstance(d, int) for d in weekdays):
        raise InvalidInput("window weekdays must be a list of 0 (Monday) to 6 (Sunday)")
    return DailyWindow(
        _clock_time(spec.get("start"), "window start"), _clock_time(spec.get("end"), "window end"), frozenset(weekdays)
    )


def level_from_spec(spec: Any) -> EscalationLevel:
    """One level from its JSON: {"delay_minutes", "targets": [{"kind", "ref", "round_robin"}], "condition"?}."""
    if not isinstance(spec, dict):
        raise InvalidInput("a level is an object")
    targets_spec = spec.get("targets")
    if not isinstance(targets_spec, list):
        raise InvalidInput("a level needs a list of targets")
    targets = []
    for target in targets_spec:
        if not isinstance(target, dict):
            raise InvalidInput("a target is an object with kind and ref")
        kind = target.get("kind")
        if kind not in {k.value for k in TargetKind}:
            raise InvalidInput(f"target kind must be one of {[k.value for k in TargetKind]}, not {kind!r}")
        targets.append(Target(TargetKind(kind), str(target.get("ref", "")), bool(target.get("round_robin", False))))
    condition = None
    cond = spec.get("condition")
    if cond is not None:
        if not isinstance(cond, dict):
            raise InvalidInput("a condition is an object")
        windows = cond.get("windows", [])
        if not isinstance(windows, list):
            raise InvalidInput("condition windows must be a list")
        business = cond.get("business_hours")
        if business is not None and not isinstance(business, bool):
            raise InvalidInput("condition business_hours must be true, false or absent")
        condition = LevelCondition(str(cond.get("zone", "UTC")), tuple(_window(w) for w in windows), business)
    delay = spec.get("delay_minutes", 5)
    if not isinstance(delay, int) or isinstance(delay, bool):
        raise InvalidInput("delay_minutes must be an integer")
    return EscalationLevel(tuple(targets), delay, condition)


def policy_from_spec(policy_id: str, name: str, levels: Any, repeats: int) -> EscalationPolicy:
    """An EscalationPolicy from stored JSON levels (validated: bad input raises InvalidInput)."""
    if not isinstance(levels, list):
        raise InvalidInput("levels must be a list")
    return EscalationPolicy(policy_id, tuple(level_from_spec(level) for level in levels), repeats, name)


# --- one-click acknowledge links -----------------------------------------------------------------

ACK_TOKEN_SALT = "zhiban.incident.ack"


@lru_cache(maxsize=8)
def _ack_serializer(secret_key: str) -> URLSafeSerializer:
    # One per key: a storm signs a link per page, and building the serializer cost as much as signing.
    return URLSafeSerializer(secret_key, salt=ACK_TOKEN_SALT)


def make_ack_token(secret_key: str, incident_id: str, person_id: str, expires_at: datetime) -> str:
    """A signed token naming the incident and the person it acknowledges as, valid until `expires_at`."""
    return _ack_serializer(secret_key).dumps({"i": incident_id, "p": person_id, "e": int(expires_at.timestamp())})


def read_ack_token(secret_key: str, token: str, now: datetime) -> tuple[str, str]:
    """(incident id, person id) of a valid, unexpired token; InvalidInput otherwise."""
    if not token or len(token) > 1000:
        raise InvalidInput("this acknowledge link is not valid")
    serializer = URLSafeSerializer(secret_key, salt=ACK_TOKEN_SALT)
    try:
        data = serializer.loads(token)
    except BadSignature as exc:
        raise InvalidInput("this acknowledge link is not valid") from exc
    if not isinstance(data, dict) or not {"i", "p", "e"} <= data.keys():
        raise InvalidInput("this acknowledge link is not valid")
    if now.timestamp() > int(data["e"]):
        raise InvalidInput("this acknowledge link has expired; acknowledge from the incident page")
    return str(data["i"]), str(data["p"])
