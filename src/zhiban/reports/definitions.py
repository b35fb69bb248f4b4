"""The definition shown next to each report figure, in English and Chinese (one place, so the UI and PDF agree)."""

from __future__ import annotations

from zhiban.reports.model import Definition

_TEXTS: dict[str, tuple[str, str]] = {
    "first_response_time": (
        "Elapsed (wall-clock) time from ticket creation to the first public agent reply; p50/p90 by nearest "
        "rank over answered tickets. Bucketed by the creation time on the customer's calendar: business hours "
        "(calendar open), holiday (an official public holiday of the customer's country), out of hours "
        "(closed, not a holiday: nights and weekends; make-up working days count as business days).",
        "从工单创建到客服第一次公开回复所经过的自然时间；p50/p90 按最近秩法，仅计已回复工单。按创建时刻在客户日历上"
        "的位置分组：工作时间（日历营业中）、节假日（客户所在国家的法定节假日）、非工作时间（非营业且非节假日，即夜间与"
        "周末；调休上班日按工作日计）。",
    ),
    "on_duty_times": (
        "Tickets filed while their plan's support mode could wake someone (dedicated or standby, the mode as it "
        "was when the ticket was filed): elapsed time from ticket creation to the first page of the engineer on "
        "duty, to the first acknowledgement, and to the first public agent reply; p50/p90 by nearest rank over "
        "the tickets that reached each step. Split by the filing time on the customer's calendar (business hours, "
        "out of hours, holiday). Drills are left out.",
        "在套餐支持模式可以叫醒值班工程师时（专属或待命，取工单创建时的模式）提交的工单：从工单创建到第一次呼叫值班工程师、"
        "到第一次确认、到客服第一次公开回复所经过的自然时间；p50/p90 按最近秩法，仅计到达该步骤的工单。按创建时刻在客户"
        "日历上的位置分组（工作时间、非工作时间、节假日）。演练不计入。",
    ),
    "sla_compliance": (
        "Per metric and plan: met / (met + breached) of SLA clock cycles. A cycle is met when fulfilled at or "
        "before its due time; active and paused cycles are not yet decided and are not counted.",
        "按指标和套餐：达标周期数 / （达标 + 违约）周期数。在到期时间之前（含）完成即为达标；进行中和暂停中的周期尚未"
        "定论，不计入。",
    ),
    "sla_breaches": (
        "Every breached SLA cycle with its cause: answered or solved late (and by how much), or not yet answered "
        "or solved at report time.",
        "每个违约的 SLA 周期及原因：回复或解决迟了（迟多少），或截至报告时仍未回复或解决。",
    ),
    "resolution_rate": (
        "Solved tickets / tickets in the period (solved = status solved or closed with a solve time).",
        "已解决工单数 / 本期工单数（已解决 = 状态为已解决或已关闭且有解决时间）。",
    ),
    "one_touch_resolution": (
        "Solved tickets that needed exactly one public agent reply and were never reopened / solved tickets.",
        "只用一次公开回复即解决且从未重开的工单数 / 已解决工单数。",
    ),
    "reopen_rate": (
        "Solved tickets reopened at least once by the customer / solved tickets.",
        "被客户重开过至少一次的已解决工单数 / 已解决工单数。",
    ),
    "backlog": (
        "Tickets not solved or closed at the report time, with their age (report time − creation) as "
        "nearest-rank p50/p90 and the oldest.",
        "截至报告时未解决也未关闭的工单数，及其存续时长（报告时刻 − 创建时刻）的最近秩 p50/p90 和最久者。",
    ),
    "mtta": (
        "Mean time to acknowledge: mean of (acknowledged − triggered) over acknowledged incidents.",
        "平均确认时长：已确认事件的（确认时刻 − 触发时刻）的平均值。",
    ),
    "mttr": (
        "Mean time to resolve: mean of (resolved − triggered) over resolved incidents (from the trigger, not the "
        "acknowledgement).",
        "平均恢复时长：已恢复事件的（恢复时刻 − 触发时刻）的平均值（从触发算起，而非从确认算起）。",
    ),
    "pages_per_person": (
        "Pages sent to each person; out of hours = outside Mon–Fri 09:00–18:00 in the person's zone; sleep "
        "hours = 22:00–08:00 in the person's zone (a subset of out of hours).",
        "每人收到的告警呼叫数；非工作时间 = 本人时区周一至周五 09:00–18:00 以外；睡眠时间 = 本人时区 22:00–08:00"
        "（属于非工作时间）。",
    ),
    "proactive_ratio": (
        "Incidents detected by the desk (telemetry, alert or an engineer) strictly before the first related "
        "customer ticket, or with no related ticket at all / all incidents. Lead time = first related ticket − "
        "trigger, nearest-rank p50 over proactive incidents that did get a ticket.",
        "在第一张相关客户工单之前（严格早于）由系统（遥测、告警或工程师）发现的事件，以及始终没有相关工单的事件 / 全部"
        "事件。提前量 = 第一张相关工单时刻 − 触发时刻，取有相关工单的主动发现事件的最近秩 p50。",
    ),
    "deflection_rate": (
        "Ticket drafts that ended without a ticket after the customer read a suggested article / drafts started.",
        "客户阅读推荐文章后放弃提交的工单草稿数 / 开始填写的草稿数。",
    ),
    "availability": (
        "Minutes in the month not covered by an incident affecting the organization (overlaps counted once; an "
        "open incident counts until the report time) / minutes in the month.",
        "当月未被影响该组织的事件覆盖的分钟数（重叠只计一次；未恢复事件计到报告时刻）/ 当月分钟数。",
    ),
    "service_credit": (
        "Percentage of the monthly fee credited under the plan's rules: the largest credit any measure "
        "(SLA compliance, availability) earns by falling below a threshold, capped by the plan.",
        "依据套餐规则返还的月费比例：各项指标（SLA 达标率、可用性）低于阈值所对应返还比例中的最大值，不超过套餐上限。",
    ),
}

DEFINITIONS: dict[str, Definition] = {key: Definition(key, en, zh) for key, (en, zh) in _TEXTS.items()}


def definition(key: str) -> Definition:
    """The definition of a figure by key (KeyError for an unknown key: a programming error)."""
    return DEFINITIONS[key]
