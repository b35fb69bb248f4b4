"""Demo data: the vendor's staff, customers on each plan, and a few tickets from a busy night."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock, FrozenClock
from zhiban.engine import enqueue
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.identity.secrets import hash_password
from zhiban.identity.service import principal_of
from zhiban.kb.jobs import SEED_DEMO
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel

DEMO_PASSWORD = "zhiban-demo-2026"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    organization: str


ORGANIZATIONS = [
    # slug, name, plan, country, zone, language
    ("liveco", "LiveCo 直播", "enterprise", "CN", "Asia/Shanghai", "zh"),
    ("classmate", "ClassMate 在线课堂", "standard", "CN", "Asia/Shanghai", "zh"),
    ("medilink", "MediLink Telehealth", "premium", "US", "America/New_York", "en"),
    ("chatterbox", "Chatterbox Social", "basic", "DE", "Europe/Berlin", "en"),
]
STAFF = [
    ("admin@zhiban.demo", "Duty Manager 值班经理", Role.ADMIN, "Asia/Shanghai", "zh"),
    ("li.na@zhiban.demo", "Li Na 李娜 (network)", Role.AGENT, "Asia/Shanghai", "zh"),
    ("sam@zhiban.demo", "Sam Carter (video)", Role.AGENT, "America/Los_Angeles", "en"),
]
# The demo hotline: a support line for each plan that includes one, and a demo customer's phone (fake 555 numbers).
DEMO_LINES = [
    ("+15550100001", "enterprise", "zh", "LiveCo 企业版"),
    ("+15550100002", "premium", "en", "Premium"),
]
DEMO_CALLERS = {"liveco": "+15550142001", "medilink": "+15550142002"}
TEAMS = [("Network", "network"), ("Video & Audio", "video"), ("SDK & Integration", "sdk_integration")]
TICKETS = [
    ("liveco", "P1", "直播间大面积卡顿 cn-east", "从凌晨 3 点开始，华东地区移动用户观看直播卡顿严重，频道 room-8812。"),
    ("liveco", "P3", "Token 过期后无法续期", "renewToken 之后仍然收到 109 错误，请帮忙看看。"),
    ("classmate", "P2", "老师端推流黑屏", "Windows 老师端开始上课后学生看到黑屏，SDK 4.3.2。"),
    ("medilink", "P2", "Echo during doctor calls", "Patients on iPad hear their own voice back since Tuesday."),
    ("chatterbox", "P4", "Invoice question", "Our November invoice shows more minutes than our dashboard."),
]


def seed_demo(session: Session, clock: Clock, *, with_tickets: bool = True) -> list[DemoLogin]:
    """Create the demo people, organizations and (unless told not to) tickets; idempotent: does nothing if the
    demo admin exists."""
    if identity.person_with_email(session, STAFF[0][0]) is not None:
        return []
    from zhiban.sla.service import ensure_plans

    ensure_plans(session, clock)
    logins: list[DemoLogin] = []
    # argon2 is slow on purpose; every demo login shares one password, so hash it once.
    demo_hash = hash_password(DEMO_PASSWORD)
    staff = []
    for email, name, role, tz, lang in STAFF:
        person = identity.create_person(
            session, clock, email=email, name=name, role=role, password_hash=demo_hash, timezone=tz, language=lang
        )
        staff.append(person)
        logins.append(DemoLogin(email, role.value, "vendor"))
    for team_name, domain in TEAMS:
        team = identity.create_team(session, name=team_name, domain=domain, lead_id=staff[0].id)
        identity.add_team_member(session, team.id, staff[1 if domain == "network" else 2].id)
    customers: dict[str, Principal] = {}
    for slug, name, plan, country, tz, lang in ORGANIZATIONS:
        org = identity.create_organization(
            session, clock, name=name, slug=slug, plan=plan, country=country, timezone=tz, language=lang
        )
        email = f"dev@{slug}.demo"
        person = identity.create_person(
            session,
            clock,
            email=email,
            name=f"{name} developer",
            role=Role.CUSTOMER,
            organization_id=org.id,
            password_hash=demo_hash,
            timezone=tz,
            language=lang,
            phone=DEMO_CALLERS.get(slug),
        )
        customers[slug] = principal_of(person)
        logins.append(DemoLogin(email, Role.CUSTOMER.value, name))
    # The shipped demo articles (kb/demo_articles) take a moment to parse and index: a job does it, so `serve`
    # answers at once.
    # A few seconds late, so the first pages after start are not waiting behind the import's write lock.
    enqueue(session, SEED_DEMO, {}, due_at=clock.now() + timedelta(seconds=20), dedup_key="demo:kb")
    if with_tickets:
        seed_demo_tickets(session, clock)
    return logins


def seed_demo_tickets(session: Session, clock: Clock) -> None:
    """The demo's tickets from a busy night, filed by each organization's developer through the portal."""
    customers = {}
    for slug, *_ in ORGANIZATIONS:
        person = identity.person_with_email(session, f"dev@{slug}.demo")
        assert person is not None, "the demo people come first"
        customers[slug] = principal_of(person)
    now = clock.now()
    for i, (slug, prio, subject, body) in enumerate(TICKETS):
        # Spread the demo tickets over the last hours so the queue looks like a real night.
        ticket_clock = FrozenClock(now - timedelta(minutes=37 * (len(TICKETS) - i)))
        ticket = tickets.create_ticket(
            session, ticket_clock, customers[slug], subject=subject, body=body, priority=prio, channel=Channel.PORTAL
        )
        _acknowledge_demo_page(session, ticket_clock, ticket.id)


def _acknowledge_demo_page(session: Session, clock: FrozenClock, ticket_id: int) -> None:
    """The night's P1 woke the network engineer on call, who acknowledged four minutes later (as in real life,
    and so the demo starts without hours-old escalation steps firing at once)."""
    from zhiban.incidents import service as incidents
    from zhiban.oncall import service as oncall

    on_duty = tickets.on_duty_of(session, ticket_id)
    schedule = oncall.schedule_named(session, "Network primary")
    if on_duty is None or schedule is None:
        return
    clock.advance(timedelta(minutes=4))
    on_call = oncall.on_call_now(session, schedule[0], clock.now())
    if on_call:
        incidents.acknowledge_as(session, clock, on_duty.incident_id, on_call[0], via="demo")


def seed_demo_world(session: Session, clock: Clock) -> list[DemoLogin]:
    """The whole demo: people, organizations and tickets, then on-call schedules and alert integrations."""
    from zhiban.incidents.integrations import seed_demo_integrations
    from zhiban.oncall.service import seed_demo_schedules

    logins = seed_demo(session, clock, with_tickets=False)
    if logins:  # a first start: each part below is idempotent, but only worth running once
        seed_demo_schedules(session, clock)
        seed_demo_integrations(session, clock)
        seed_demo_status(session, clock)
        seed_demo_support(session, clock)
        seed_demo_tickets(session, clock)  # after the support modes: the demo's P1 pages whoever is on call
    return logins


_DEMO_ADMIN = Principal(person_id="demo", role=Role.ADMIN, organization_id=None, name="zhiban demo")
DEMO_TICKET_POLICY = "Customer tickets on duty"
DEMO_TICKET_SERVICE = "P1 tickets"
# plan: (mode, urgent priorities, urgent requests a day); paging priorities are the mode's defaults.
DEMO_SUPPORT = {
    "basic": ("queue", (), 0),
    "standard": ("queue", (), 0),
    "premium": ("dedicated", ("P1", "P2"), 3),
    "enterprise": ("standby", ("P1", "P2", "P3"), 5),
}


def seed_demo_support(session: Session, clock: Clock) -> None:
    """Support modes on the demo plans: Premium's tickets go to a dedicated contact, Enterprise's page 24x7.

    Pages go through the "P1 tickets" service, whose policy pages whoever is on the "Network primary"
    schedule, then the duty manager. Premium organizations get a dedicated contact and a backup.
    """
    from zhiban.incidents import service as incidents
    from zhiban.sla import service as sla

    policy = incidents.create_policy(
        session,
        clock,
        name=DEMO_TICKET_POLICY,
        levels=[
            {"delay_minutes": 10, "targets": [{"kind": "schedule", "ref": "Network primary"}]},
            {"delay_minutes": 10, "targets": [{"kind": "schedule", "ref": "Duty manager"}]},
        ],
        repeats=2,
    )
    service = incidents.get_service(session, DEMO_TICKET_SERVICE)
    incidents.update_service(
        session,
        service.id,
        name=service.name,
        policy=policy.id,
        urgency_rule="high",
        support_country=service.support_country,
        support_zone=service.support_zone,
        ack_timeout_minutes=service.ack_timeout_minutes,
        organization_id=None,
        description="Customers' tickets that wake the engineer on duty (plans in dedicated or standby mode)",
    )
    for plan, (mode, urgent, per_day) in DEMO_SUPPORT.items():
        support = {"mode": mode, "urgent_priorities": list(urgent), "urgent_per_day": per_day}
        if mode != "queue":
            support["paging_service_id"] = service.id
        sla.save_plan(session, clock, plan, support=support)
    from zhiban.hotline import service as hotline

    for number, plan, language, label in DEMO_LINES:
        hotline.set_line(session, clock, _DEMO_ADMIN, number, plan=plan, language=language, label=label)
    contact, backup = (identity.person_with_email(session, e) for e in ("sam@zhiban.demo", "li.na@zhiban.demo"))
    assert contact is not None and backup is not None
    for slug, _name, plan, *_ in ORGANIZATIONS:
        org = identity.organization_with_slug(session, slug)
        if org is not None and plan == "premium":
            identity.set_dedicated_contacts(session, _DEMO_ADMIN, org.id, contact_id=contact.id, backup_id=backup.id)


def seed_demo_status(session: Session, clock: Clock) -> int:
    """Publish the demo's media network as its admin would: each edge's incidents on its region, under a public title.

    The telemetry detector raises an edge's incidents on the service "edge <name>"; made here first, they are
    mapped to a public component, so the public page shows "Degraded audio and video in cn-east", never the
    node. Returns how many services were published.
    """
    from zhiban.core.errors import NotFound
    from zhiban.incidents import service as incidents
    from zhiban.incidents.integrations import DEMO_POLICY, DEMO_SERVICES
    from zhiban.status import service as status
    from zhiban.telemetry.simulator import demo_apps

    admin = Principal(person_id="demo", role=Role.ADMIN, organization_id=None, name="zhiban demo")
    policy = incidents.get_policy(session, DEMO_POLICY).id
    edges = {edge: region.name for app in demo_apps() for region in app.regions for edge in region.edges}
    published = 0
    for edge, region in sorted(edges.items()):
        name = f"edge {edge}"
        try:
            svc = incidents.get_service(session, name)
        except NotFound:
            svc = incidents.create_service(
                session, clock, name=name, policy=policy, urgency_rule="severity", description=f"Edge node in {region}"
            )
        component = region if region in status.PLATFORM_COMPONENTS else "edge network"
        title = f"Degraded audio and video in {region} · {region} 音视频质量下降"
        status.publish_service(session, clock, admin, svc.id, component=component, title=title)
        published += 1
    status.publish_service(session, clock, admin, DEMO_SERVICES[0], component="cn-east",
                           title="Media network in East China · 华东媒体网络")  # fmt: skip
    return published + 1
