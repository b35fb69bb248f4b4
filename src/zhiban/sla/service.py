"""Use cases of SLAs, the feature's public entry point: re-exports plans and policies (sla.policies, sla.rules),
clock replay and timers (sla.clocks), recompute (sla.recompute), the urgency queue (sla.queue), what-if due
times (sla.whatif) and notices of warnings and breaches (sla.escalation).

The ticket event log is the truth: `recompute_ticket` replays it (plus the policy and calendar versions that
came into force since the ticket was filed) with sla.model.compute_clocks, then rewrites the ticket's rows of
`sla_clocks` and re-arms its timers. Policy and calendar edits write new immutable versions, so a replay
counts business time already used under the rules then in force.
"""

from __future__ import annotations

from zhiban.sla.clocks import (
    Facts,
    TimerOps,
    model_events,
    replay,
    timer_key,
)
from zhiban.sla.escalation import (
    escalation_chain,
    list_notifications,
    mark_read,
    notify,
)
from zhiban.sla.policies import (
    BREACH_JOB,
    MAX_PLANS,
    MAX_RULES,
    MAX_TARGET_MINUTES,
    NO_DUE_BASE,
    OPEN_STATUSES,
    PRIORITY_RANK,
    WAITING_STATUSES,
    WARNING_JOB,
    assign_calendar,
    builtin_rules,
    clean_plan_targets,
    clean_targets,
    current_policy_version,
    ensure_plans,
    organization_calendar,
    policy_from_json,
    policy_version,
    target_from_json,
    target_to_json,
)
from zhiban.sla.queue import (
    Badge,
    QueueItem,
    QueueTicket,
    TicketSla,
    queue_order,
    ticket_sla,
)
from zhiban.sla.recompute import (
    LAST_RECOMPUTE,
    OPEN_COUNT_TTL,
    RECOMPUTE_CHUNK,
    TIMER_FLUSH,
    RecomputeReport,
    cached_open_count,
    recompute_open_tickets,
    recompute_ticket,
)
from zhiban.sla.rules import (
    add_rule,
    delete_plan,
    delete_rule,
    get_plan,
    list_plans,
    list_rules,
    reorder_rules,
    require_admin,
    save_plan,
    update_rule,
)
from zhiban.sla.whatif import (
    due_times,
)

__all__ = [
    "BREACH_JOB",
    "LAST_RECOMPUTE",
    "MAX_PLANS",
    "MAX_RULES",
    "MAX_TARGET_MINUTES",
    "NO_DUE_BASE",
    "OPEN_COUNT_TTL",
    "OPEN_STATUSES",
    "PRIORITY_RANK",
    "RECOMPUTE_CHUNK",
    "TIMER_FLUSH",
    "WAITING_STATUSES",
    "WARNING_JOB",
    "Badge",
    "Facts",
    "QueueItem",
    "QueueTicket",
    "RecomputeReport",
    "TicketSla",
    "TimerOps",
    "add_rule",
    "assign_calendar",
    "builtin_rules",
    "cached_open_count",
    "clean_plan_targets",
    "clean_targets",
    "current_policy_version",
    "delete_plan",
    "delete_rule",
    "due_times",
    "ensure_plans",
    "escalation_chain",
    "get_plan",
    "list_notifications",
    "list_plans",
    "list_rules",
    "mark_read",
    "model_events",
    "notify",
    "organization_calendar",
    "policy_from_json",
    "policy_version",
    "queue_order",
    "recompute_open_tickets",
    "recompute_ticket",
    "reorder_rules",
    "replay",
    "require_admin",
    "save_plan",
    "target_from_json",
    "target_to_json",
    "ticket_sla",
    "timer_key",
    "update_rule",
]
