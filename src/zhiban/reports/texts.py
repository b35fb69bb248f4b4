"""Labels (zh/en) and number formats shared by the HTML and PDF customer SLA reports."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "SLA report",
        "organization": "Organization",
        "plan": "Plan",
        "month": "Month",
        "generated": "Generated",
        "times_in": "Times in",
        "targets": "Targets and results",
        "priority": "Priority",
        "metric": "Metric",
        "target": "Target",
        "met": "Met",
        "breached": "Breached",
        "open": "Open",
        "compliance": "Compliance",
        "overall_compliance": "SLA compliance (all cycles)",
        "availability": "Availability",
        "downtime": "Downtime",
        "incidents": "Incidents",
        "no_incidents": "No incident affected this organization this month.",
        "incident": "Incident",
        "incident_title": "Title",
        "service": "Service",
        "severity": "Severity",
        "started": "Started",
        "resolved": "Resolved",
        "duration": "Duration in month",
        "ongoing": "ongoing",
        "breaches": "Breaches",
        "no_breaches": "No SLA breach this month.",
        "ticket": "Ticket",
        "due": "Due",
        "cause": "Cause",
        "credits": "Service credit",
        "credit_pct": "Credit",
        "credit_amount": "Amount",
        "monthly_fee": "Monthly fee",
        "no_credit": "No service credit is due under the plan's rules.",
        "reason": "{measure} {value} below {threshold}: {credit} of the monthly fee",
        "definitions": "Definitions",
        "no_data": "n/a",
        "24x7": "24x7",
        "business": "business hours",
        "first_response": "First response",
        "next_response": "Next response",
        "periodic_update": "Periodic update",
        "resolution": "Resolution",
        "sla_compliance": "SLA compliance",
        "on_duty": "Engineer on duty",
        "on_duty_intro": "Your tickets filed in a paging support mode: time from the ticket to the page, the "
        "engineer's acknowledgement and the first public reply (p50 / p90; how many reached each step).",
        "no_on_duty": "No ticket was filed in a paging support mode this month.",
        "hours_class": "Filed in",
        "tickets": "Tickets",
        "to_page": "To page",
        "to_ack": "To acknowledgement",
        "to_reply": "To first reply",
        "business_hours": "business hours",
        "out_of_hours": "out of hours",
        "holiday": "holiday",
        "all_hours": "all hours",
    },
    "zh": {
        "title": "SLA 服务报告",
        "organization": "客户",
        "plan": "套餐",
        "month": "月份",
        "generated": "生成时间",
        "times_in": "时区",
        "targets": "服务目标与达成情况",
        "priority": "优先级",
        "metric": "指标",
        "target": "目标",
        "met": "达标",
        "breached": "违约",
        "open": "进行中",
        "compliance": "达标率",
        "overall_compliance": "SLA 达标率（全部周期）",
        "availability": "可用性",
        "downtime": "不可用时长",
        "incidents": "影响事件",
        "no_incidents": "本月没有影响该客户的事件。",
        "incident": "事件",
        "incident_title": "标题",
        "service": "服务",
        "severity": "级别",
        "started": "开始",
        "resolved": "恢复",
        "duration": "本月内时长",
        "ongoing": "未恢复",
        "breaches": "违约明细",
        "no_breaches": "本月没有 SLA 违约。",
        "ticket": "工单",
        "due": "到期",
        "cause": "原因",
        "credits": "服务补偿",
        "credit_pct": "补偿比例",
        "credit_amount": "补偿金额",
        "monthly_fee": "月费",
        "no_credit": "按套餐规则，本月无服务补偿。",
        "reason": "{measure} {value} 低于 {threshold}：补偿月费的 {credit}",
        "definitions": "指标定义",
        "no_data": "无数据",
        "24x7": "7×24",
        "business": "工作时间",
        "first_response": "首次响应",
        "next_response": "后续响应",
        "periodic_update": "定期更新",
        "resolution": "解决",
        "sla_compliance": "SLA 达标率",
        "on_duty": "值班响应",
        "on_duty_intro": "在可呼叫值班的支持模式下提交的工单：从工单到呼叫值班工程师、到工程师确认、"
        "到首次公开回复的时间（p50 / p90；括号内为到达该步骤的工单数）。",
        "no_on_duty": "本月没有在可呼叫值班的支持模式下提交的工单。",
        "hours_class": "提交时段",
        "tickets": "工单数",
        "to_page": "到呼叫",
        "to_ack": "到确认",
        "to_reply": "到首次回复",
        "business_hours": "工作时间",
        "out_of_hours": "非工作时间",
        "holiday": "节假日",
        "all_hours": "全部时段",
    },
}


def labels(lang: str) -> dict[str, str]:
    """The report labels for `lang` (English unless "zh")."""
    return LABELS["zh" if lang == "zh" else "en"]


def format_duration(value: timedelta | None, lang: str = "en") -> str:
    """A duration for people: "45 s", "15 min", "4 h", "1 h 30 min", "2 d 3 h" (zh: 秒/分钟/小时/天)."""
    if value is None:
        return labels(lang)["no_data"]
    seconds = round(value.total_seconds())
    units = ("天", "小时", "分钟", "秒") if lang == "zh" else ("d", "h", "min", "s")
    sep = "" if lang == "zh" else " "
    if seconds < 60:
        return f"{seconds}{sep}{units[3]}"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = round(rest / 60) if not days else 0
    if minutes == 60:
        hours, minutes = hours + 1, 0
    parts = [(days, units[0]), (hours, units[1]), (minutes, units[2])]
    shown = [f"{n}{sep}{u}" for n, u in parts if n][:2]
    return (" " if lang != "zh" else "").join(shown) or f"0{sep}{units[2]}"


def format_pct(value: float | None, lang: str = "en") -> str:
    """A percentage with up to three decimals, trailing zeros dropped: "99.95 %", "100 %"."""
    if value is None:
        return labels(lang)["no_data"]
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"


def format_time(moment: datetime | None, tz: str) -> str:
    """A UTC moment on the report's zone wall clock, "2026-10-03 03:00"."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
