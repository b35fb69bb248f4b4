"""Short zh/en texts for an incident page (to on-call) or notice (to customers), in every channel's form."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zhiban.core.errors import InvalidInput
from zhiban.notify.model import MAX_SUBJECT, Language, Link, Message

NoticeKind = Literal["page", "notice"]


@dataclass(frozen=True)
class IncidentNotice:
    """What a page or a notice says about an incident."""

    kind: NoticeKind
    title: str
    severity: str
    service: str
    since: datetime
    timezone: str = "Asia/Shanghai"
    ack_url: str | None = None
    incident_url: str | None = None

    def __post_init__(self) -> None:
        if self.since.tzinfo is None:
            raise InvalidInput("since must be timezone-aware")
        for name, value, limit in (("title", self.title, 200), ("severity", self.severity, 20)):
            if not value.strip() or len(value) > limit:
                raise InvalidInput(f"{name} must be 1-{limit} characters")
        if len(self.service) > 100:
            raise InvalidInput("service must be at most 100 characters")


# Per language: labels and sentence templates. Plain str.format; values are escaped per output form.
TEMPLATES: dict[Language, dict[str, str]] = {
    "en": {
        "page_subject": "[{severity}] {title} — {service}",
        "notice_subject": "[Incident] {title}",
        "notice_lead": "We are investigating an issue affecting {service}: {title}",
        "severity": "Severity",
        "service": "Service",
        "since": "Since",
        "acknowledge": "Acknowledge",
        "incident": "Incident",
        "updates": "Follow updates",
        "page_short": "[zhiban] {severity} {service}: {title}",
        "notice_short": "[zhiban] Incident on {service}: {title}",
        "short_ack": " Ack: {url}",
        "short_link": " {url}",
        "page_spoken": "Zhiban alert. Severity {severity}. Service {service}. {title}.",
        "notice_spoken": "Zhiban incident notice. Service {service}. {title}.",
    },
    "zh": {
        "page_subject": "【{severity}】{title} — {service}",
        "notice_subject": "【故障通知】{title}",
        "notice_lead": "我们正在处理一个影响 {service} 的问题：{title}",
        "severity": "级别",
        "service": "服务",
        "since": "开始时间",
        "acknowledge": "确认",
        "incident": "事件详情",
        "updates": "查看进展",
        "page_short": "【值班】{severity} {service}：{title}",
        "notice_short": "【值班】{service} 故障通知：{title}",
        "short_ack": " 确认：{url}",
        "short_link": " {url}",
        "page_spoken": "值班告警。级别 {severity}。服务 {service}。{title}。",
        "notice_spoken": "值班故障通知。服务 {service}。{title}。",
    },
}
COLON = {"en": ": ", "zh": "："}


def format_since(since: datetime, timezone: str) -> str:
    """The start time in the viewer's zone with its offset: 2026-11-21 03:00 UTC+08:00."""
    try:
        local = since.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {timezone!r}") from exc
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} UTC{offset[:3]}:{offset[3:]}"


def render_incident(notice: IncidentNotice, language: Language, idempotency_key: str) -> Message:
    """The message for one page or notice, with text, HTML, markdown, SMS and spoken forms."""
    if language not in TEMPLATES:
        raise InvalidInput(f"no templates for language {language!r}")
    words = TEMPLATES[language]
    colon = COLON[language]
    values = {
        "title": " ".join(notice.title.split()),
        "severity": notice.severity.strip(),
        "service": notice.service.strip() or "-",
    }
    since = format_since(notice.since, notice.timezone)
    links: list[Link] = []
    if notice.kind == "page" and notice.ack_url:
        links.append(Link("acknowledge", notice.ack_url, words["acknowledge"]))
    if notice.incident_url:
        links.append(Link("incident", notice.incident_url, words["incident" if notice.kind == "page" else "updates"]))

    if notice.kind == "page":
        lead = values["title"]
        facts = [
            (words["severity"], values["severity"]),
            (words["service"], values["service"]),
            (words["since"], since),
        ]
    else:
        lead = words["notice_lead"].format(**values)
        facts = [(words["since"], since)]

    text_lines = [lead, *(f"{label}{colon}{value}" for label, value in facts)]
    text_lines += [f"{link.label}{colon}{link.url}" for link in links]

    md_lines = [f"### {words[notice.kind + '_subject'].format(**values)}", ""]
    md_lines += [lead, ""] if notice.kind == "notice" else []
    md_lines += [f"- **{label}**{colon}{value}" for label, value in facts]
    if links:
        md_lines += ["", " · ".join(f"[{link.label}]({link.url})" for link in links)]

    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in facts
    )
    buttons = " ".join(f"<a href='{html.escape(link.url)}'>{html.escape(link.label)}</a>" for link in links)
    html_body = (
        f"<html><body><p><strong>{html.escape(lead)}</strong></p><table>{rows}</table><p>{buttons}</p></body></html>"
    )

    short = words[notice.kind + "_short"].format(**values)
    ack = next((link for link in links if link.rel == "acknowledge"), None)
    if ack:
        short += words["short_ack"].format(url=ack.url)
    elif links:
        short += words["short_link"].format(url=links[0].url)

    subject = words[notice.kind + "_subject"].format(**values)
    return Message(
        subject=subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…",
        text="\n".join(text_lines),
        idempotency_key=idempotency_key,
        language=language,
        html=html_body,
        markdown="\n".join(md_lines),
        short_text=short,
        spoken_text=words[notice.kind + "_spoken"].format(**values),
        links=tuple(links),
        event=f"incident.{notice.kind}",
        metadata={"severity": values["severity"], "service": values["service"], "since": notice.since.isoformat()},
    )
