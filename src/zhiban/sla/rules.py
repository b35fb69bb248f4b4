"""Editing SLA plans and policy rules (admins only): each edit publishes a new policy version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.identity.model import Principal, Role
from zhiban.incidents import service as incidents
from zhiban.sla.model import DEFAULT_PAGING_PRIORITIES, Priority, SupportMode, support_terms
from zhiban.sla.policies import (
    MAX_PLANS,
    MAX_RULES,
    PRIORITY_RANK,
    _plan_key,
    _write_policy_version,
    clean_plan_targets,
    clean_targets,
    ensure_plans,
    terms_of,
)
from zhiban.sla.recompute import recompute_open_tickets
from zhiban.sla.store import (
    PlanRow,
    PolicyRuleRow,
    PolicyVersionRow,
    plans_in_order,
    rules_in_order,
)


def _policy_edited(session: Session, clock: Clock) -> PolicyVersionRow:
    """Publish the edited plans and rules as a new version and re-apply it to open tickets."""
    row = _write_policy_version(session, clock.now())
    recompute_open_tickets(session, clock)
    return row


# -- plans CRUD ----------------------------------------------------------------------------------------


def list_plans(session: Session) -> list[PlanRow]:
    ensure_plans(session)
    return plans_in_order(session)


def get_plan(session: Session, key: str) -> PlanRow:
    ensure_plans(session)
    row = session.get(PlanRow, _plan_key(key))
    if row is None:
        raise NotFound(f"no plan {key!r}")
    return row


def save_plan(
    session: Session,
    clock: Clock,
    key: str,
    *,
    name: str | None = None,
    targets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    proactive_warning: bool | None = None,
    position: int | None = None,
    support: Mapping[str, Any] | None = None,
) -> PlanRow:
    """Create or change a plan; the new policy version applies to open tickets from now on.

    `support` changes the plan's support terms (any of mode, paging_priorities, paging_service_id,
    urgent_priorities, urgent_per_day); a mode given without paging priorities takes the mode's defaults.
    """
    ensure_plans(session, clock)
    key = _plan_key(key)
    row = session.get(PlanRow, key)
    if row is None:
        if len(plans_in_order(session)) >= MAX_PLANS:
            raise InvalidInput(f"at most {MAX_PLANS} plans")
        row = PlanRow(key=key, name=key.capitalize(), targets={}, proactive_warning=False, position=MAX_PLANS)
        session.add(row)
    if name is not None:
        name = " ".join(name.split())
        if not 1 <= len(name) <= 100:
            raise InvalidInput("a plan name has 1-100 characters")
        row.name = name
    if targets is not None:
        row.targets = clean_plan_targets(targets)
    if proactive_warning is not None:
        row.proactive_warning = proactive_warning
    if position is not None:
        row.position = position
    if support is not None:
        _apply_support(session, row, support)
    row.updated_at = clock.now()
    session.flush()
    _policy_edited(session, clock)
    return row


def _apply_support(session: Session, row: PlanRow, support: Mapping[str, Any]) -> None:
    support = {k: v for k, v in support.items() if v is not None}  # null means "leave it as it is"
    unknown = set(support) - {"mode", "paging_priorities", "paging_service_id", "urgent_priorities", "urgent_per_day"}
    if unknown:
        raise InvalidInput(f"unknown support terms: {', '.join(sorted(unknown))}")
    current = terms_of(row)
    mode = str(support.get("mode", current.mode.value))
    paging = support.get("paging_priorities")
    if paging is None:
        changed_mode = "mode" in support and mode != current.mode.value
        known = {m.value: m for m in SupportMode}.get(mode, SupportMode.QUEUE)  # a bad mode is refused below
        paging = DEFAULT_PAGING_PRIORITIES[known] if changed_mode else current.paging_priorities
    service_ref = support.get("paging_service_id", current.paging_service_id)
    if service_ref and service_ref != current.paging_service_id:
        service_ref = incidents.get_service(session, str(service_ref)).id  # a name or an id; NotFound if neither
    terms = support_terms(
        row.key,
        mode,
        [str(p) for p in paging],
        service_ref,
        [str(p) for p in support.get("urgent_priorities", current.urgent_priorities)],
        int(support.get("urgent_per_day", current.urgent_per_day)),
    )
    row.support_mode = terms.mode.value
    row.paging_priorities = [p.value for p in Priority if p in terms.paging_priorities]
    row.paging_service_id = terms.paging_service_id
    row.urgent_priorities = [p.value for p in Priority if p in terms.urgent_priorities]
    row.urgent_per_day = terms.urgent_per_day


def delete_plan(session: Session, clock: Clock, key: str) -> None:
    """Remove a plan: its tickets keep time used, and have no targets from now on (breaches stay)."""
    row = get_plan(session, key)
    session.delete(row)
    session.flush()
    _policy_edited(session, clock)


# -- policy rules CRUD ---------------------------------------------------------------------------------


def _clean_opt(value: str | None, what: str, allowed: Iterable[str] | None = None, size: int = 64) -> str | None:
    if value is None or value == "":
        return None
    value = value.strip()
    if len(value) > size or (allowed is not None and value not in allowed):
        raise InvalidInput(f"bad {what} {value[:70]!r}")
    return value


def list_rules(session: Session) -> list[PolicyRuleRow]:
    return rules_in_order(session)


def add_rule(
    session: Session,
    clock: Clock,
    *,
    name: str,
    targets: Sequence[Mapping[str, Any]],
    plan: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    category: str | None = None,
    position: int | None = None,
) -> PolicyRuleRow:
    """Add a rule checked before the plans' rules, at `position` (0 = first; default last)."""
    ensure_plans(session, clock)
    rules = rules_in_order(session)
    if len(rules) >= MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules")
    name = " ".join(str(name).split())
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a rule name has 1-100 characters")
    row = PolicyRuleRow(
        name=name,
        plan=_plan_key(plan) if plan else None,
        priority=_clean_opt(priority, "priority", PRIORITY_RANK),
        channel=_clean_opt(channel, "channel", size=16),
        category=_clean_opt(category, "category"),
        targets=clean_targets(targets),
        position=0,
        updated_at=clock.now(),
    )
    session.add(row)
    session.flush()
    at = len(rules) if position is None else max(0, min(position, len(rules)))
    _renumber([*rules[:at], row, *rules[at:]])
    _policy_edited(session, clock)
    return row


def _renumber(rows: Sequence[PolicyRuleRow]) -> None:
    for i, r in enumerate(rows):
        r.position = i


def _rule(session: Session, rule_id: int) -> PolicyRuleRow:
    row = session.get(PolicyRuleRow, rule_id)
    if row is None:
        raise NotFound(f"no SLA rule {rule_id}")
    return row


def update_rule(
    session: Session,
    clock: Clock,
    rule_id: int,
    *,
    name: str | None = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    plan: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> PolicyRuleRow:
    """Change a rule's match or targets ("" clears a match field)."""
    row = _rule(session, rule_id)
    if name is not None:
        row.name = " ".join(name.split())[:100] or row.name
    if targets is not None:
        row.targets = clean_targets(targets)
    if plan is not None:
        row.plan = _plan_key(plan) if plan else None
    if priority is not None:
        row.priority = _clean_opt(priority, "priority", PRIORITY_RANK)
    if channel is not None:
        row.channel = _clean_opt(channel, "channel", size=16)
    if category is not None:
        row.category = _clean_opt(category, "category")
    row.updated_at = clock.now()
    session.flush()
    _policy_edited(session, clock)
    return row


def delete_rule(session: Session, clock: Clock, rule_id: int) -> None:
    row = _rule(session, rule_id)
    session.delete(row)
    session.flush()
    _renumber(rules_in_order(session))
    _policy_edited(session, clock)


def reorder_rules(session: Session, clock: Clock, rule_ids: Sequence[int]) -> list[PolicyRuleRow]:
    """Put the rules in this order (every rule exactly once)."""
    rules = rules_in_order(session)
    by_id = {r.id: r for r in rules}
    if sorted(rule_ids) != sorted(by_id):
        raise InvalidInput("list every rule id exactly once")
    ordered = [by_id[i] for i in rule_ids]
    _renumber(ordered)
    session.flush()
    _policy_edited(session, clock)
    return ordered


def require_admin(principal: Principal) -> None:
    """SLA and calendar settings are for admins (with the admin scope on tokens)."""
    principal.require_scope("admin")
    if principal.role is not Role.ADMIN:
        raise Forbidden("this needs an admin")
