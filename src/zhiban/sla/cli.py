"""`zhiban sla …`: what-if due times, plans, policy rules, recompute, calendar of an organization."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy import inspect

from zhiban.core.console import console as cli_console
from zhiban.core.errors import InvalidInput, NotFound, ZhibanError
from zhiban.core.settings import get_settings
from zhiban.desk import Desk

app = typer.Typer(help="SLA plans, policy rules, clocks and what-if due times.", no_args_is_help=True)
console = cli_console()
err = cli_console(stderr=True)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def _fail(exc: ZhibanError) -> typer.Exit:
    err.print(f"error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(2)


def _desk() -> Desk:
    return Desk(settings=get_settings())


def minutes_of(text: str) -> float:
    """ "4h", "30m", "1h30m", "2d" (days of 24 h) → minutes."""
    m = _DURATION.match(text.strip().lower())
    if not m or not any(m.groups()):
        raise InvalidInput(f"bad duration {text!r}: use e.g. 30m, 4h, 1h30m, 2d")
    d, h, mi = (int(g or 0) for g in m.groups())
    return d * 1440 + h * 60 + mi


def _when(text: str, tz: str) -> datetime:
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"bad --at {text!r}: use ISO 8601, e.g. 2026-10-09T17:50") from exc
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


@app.command()
def due(
    plan: Annotated[str, typer.Option(help="plan, e.g. Standard")],
    priority: Annotated[str, typer.Option(help="P1..P4")],
    country: Annotated[str, typer.Option(help="ISO country code of the customer's calendar, e.g. CN")],
    tz: Annotated[str, typer.Option(help="the customer's IANA time zone")],
    at: Annotated[str, typer.Option(help="filing time, ISO 8601 (local to --tz when it has no offset)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    builtin: Annotated[bool, typer.Option(help="use the built-in demo plans, not the database's")] = False,
) -> None:
    """What-if: each metric's due time for a ticket filed at --at (times in --tz)."""
    from zhiban.sla import service

    try:
        moment = _when(at, tz)
        if builtin:
            dues = service.due_times(plan, priority, country, tz, moment)
        else:
            desk = _desk()
            with desk.transaction() as session:
                has_tables = inspect(session.connection()).has_table("sla_policy_versions")
                dues = service.due_times(plan, priority, country, tz, moment, session if has_tables else None)
            desk.db.dispose()
    except ZhibanError as exc:
        raise _fail(exc) from None
    out = {k: v.isoformat() if v else None for k, v in dues.items()}
    if as_json:
        typer.echo(json.dumps(out))
        return
    table = Table(title=f"{plan} {priority.upper()} filed {moment.isoformat()}")
    table.add_column("metric")
    table.add_column("due")
    for key, value in out.items():
        table.add_row(key.removesuffix("_due"), value or "—")
    console.print(table)


@app.command()
def plans() -> None:
    """List the plans and their targets (seeding the demo plans on first use)."""
    from zhiban.sla import service

    desk = _desk()
    with desk.transaction() as session:
        rows = service.list_plans(session)
        table = Table(title=f"policy version {service.current_policy_version(session)}")
        for col in ("key", "name", "support", "priority", "targets"):
            table.add_column(col)
        for plan in rows:
            terms = service.terms_of(plan)
            pages = "/".join(sorted(p.value for p in terms.paging_priorities))
            support = terms.mode.value + (f" (pages {pages})" if pages and terms.mode.value != "queue" else "")
            for prio, targets in sorted(plan.targets.items()):
                text = ", ".join(f"{t['metric']} {t['minutes']} min ({t['calendar']})" for t in targets)
                table.add_row(plan.key, plan.name, support, prio, text)
    console.print(table)


def _target_args(
    first_response: str | None, next_response: str | None, periodic_update: str | None, resolution: str | None, cal: str
) -> list[dict[str, Any]]:
    given = {
        "first_response": first_response,
        "next_response": next_response,
        "periodic_update": periodic_update,
        "resolution": resolution,
    }
    return [{"metric": m, "minutes": minutes_of(v), "calendar": cal} for m, v in given.items() if v]


Dur = Annotated[str | None, typer.Option(help="e.g. 4h, 30m, 1h30m")]


@app.command("plan-set")
def plan_set(
    key: Annotated[str, typer.Argument(help="plan key, e.g. standard")],
    priority: Annotated[str, typer.Option(help="P1..P4")],
    first_response: Dur = None,
    next_response: Dur = None,
    periodic_update: Dur = None,
    resolution: Dur = None,
    calendar: Annotated[str, typer.Option(help="business or 24x7")] = "business",
    name: Annotated[str | None, typer.Option(help="display name")] = None,
) -> None:
    """Set a plan's targets for one priority (creates the plan if new); open tickets follow from now on."""
    from zhiban.sla import service

    try:
        targets = _target_args(first_response, next_response, periodic_update, resolution, calendar)
        desk = _desk()
        with desk.transaction() as session:
            try:
                current = dict(service.get_plan(session, key).targets)
            except NotFound:
                current = {}
            current[priority.upper()] = targets
            row = service.save_plan(session, desk.clock, key, name=name, targets=current)
            console.print(f"plan {row.key}: {priority.upper()} now has {len(targets)} target(s)")
    except ZhibanError as exc:
        raise _fail(exc) from None


def _priorities(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip().upper() for p in text.split(",") if p.strip()]


@app.command("support")
def support(
    key: Annotated[str, typer.Argument(help="plan key, e.g. enterprise")],
    mode: Annotated[str | None, typer.Option(help="queue, dedicated or standby")] = None,
    service_ref: Annotated[
        str | None, typer.Option("--service", help="incident service the pages go through (name or id)")
    ] = None,
    paging: Annotated[str | None, typer.Option(help="priorities that page, e.g. P1,P2 (default: the mode's)")] = None,
    urgent: Annotated[str | None, typer.Option(help="priorities a customer may mark urgent, e.g. P1,P2")] = None,
    urgent_per_day: Annotated[int | None, typer.Option(help="urgent requests a day per organization")] = None,
) -> None:
    """Set a plan's support mode: who is woken for its tickets, when, and through which incident service."""
    from zhiban.sla import service

    given: dict[str, Any] = {
        "mode": mode,
        "paging_service_id": service_ref,
        "paging_priorities": _priorities(paging),
        "urgent_priorities": _priorities(urgent),
        "urgent_per_day": urgent_per_day,
    }
    try:
        desk = _desk()
        with desk.transaction() as session:
            row = service.save_plan(session, desk.clock, key, support={k: v for k, v in given.items() if v is not None})
            terms = service.terms_of(row)
            pages = ",".join(sorted(p.value for p in terms.paging_priorities)) or "nothing"
            console.print(f"plan {row.key}: {terms.mode.value}, pages {pages}", highlight=False)
    except ZhibanError as exc:
        raise _fail(exc) from None


@app.command()
def rules() -> None:
    """List the policy rules, in the order they are checked (before the plans' targets)."""
    from zhiban.sla import service

    desk = _desk()
    with desk.transaction() as session:
        table = Table(title=f"policy version {service.current_policy_version(session)}")
        for col in ("id", "#", "name", "plan", "priority", "channel", "category", "targets"):
            table.add_column(col)
        for r in service.list_rules(session):
            text = ", ".join(f"{t['metric']} {t['minutes']} min ({t['calendar']})" for t in r.targets)
            table.add_row(str(r.id), str(r.position), r.name, r.plan, r.priority, r.channel, r.category, text)
    console.print(table)


@app.command("rule-add")
def rule_add(
    name: Annotated[str, typer.Argument(help="what the rule is for")],
    plan: Annotated[str | None, typer.Option(help="match this plan (default any)")] = None,
    priority: Annotated[str | None, typer.Option(help="match this priority")] = None,
    channel: Annotated[str | None, typer.Option(help="match this channel")] = None,
    category: Annotated[str | None, typer.Option(help="match this category")] = None,
    position: Annotated[int | None, typer.Option(help="0 = checked first; default last")] = None,
    first_response: Dur = None,
    next_response: Dur = None,
    periodic_update: Dur = None,
    resolution: Dur = None,
    calendar: Annotated[str, typer.Option(help="business or 24x7")] = "business",
) -> None:
    """Add a policy rule checked before the plans' own targets."""
    from zhiban.sla import service

    try:
        targets = _target_args(first_response, next_response, periodic_update, resolution, calendar)
        desk = _desk()
        with desk.transaction() as session:
            row = service.add_rule(
                session,
                desk.clock,
                name=name,
                targets=targets,
                plan=plan,
                priority=priority,
                channel=channel,
                category=category,
                position=position,
            )
            console.print(f"rule {row.id} added at position {row.position}")
    except ZhibanError as exc:
        raise _fail(exc) from None


@app.command("rule-remove")
def rule_remove(rule_id: Annotated[int, typer.Argument(help="rule id")]) -> None:
    """Remove a policy rule."""
    from zhiban.sla import service

    try:
        desk = _desk()
        with desk.transaction() as session:
            service.delete_rule(session, desk.clock, rule_id)
        console.print(f"rule {rule_id} removed")
    except ZhibanError as exc:
        raise _fail(exc) from None


@app.command("calendar")
def assign(
    org: Annotated[str, typer.Argument(help="organization slug")],
    calendar: Annotated[str, typer.Argument(help="calendar id or name")],
) -> None:
    """Count an organization's new tickets on this calendar."""
    from zhiban.identity import service as identity
    from zhiban.sla import service

    try:
        desk = _desk()
        with desk.transaction() as session:
            found = identity.organization_with_slug(session, org)
            if found is None:
                raise NotFound(f"no organization with slug {org!r}")
            service.assign_calendar(session, found.id, calendar)
        console.print(f"{org} now counts on calendar {calendar}")
    except ZhibanError as exc:
        raise _fail(exc) from None


@app.command()
def recompute() -> None:
    """Replay every open ticket's clocks from its log (after an upgrade or a manual data fix)."""
    from zhiban.sla import service

    desk = _desk()
    with desk.transaction() as session:
        report = service.recompute_open_tickets(session, desk.clock, reason="recompute")
    console.print(
        f"{report.tickets} open tickets, {report.clocks} clocks; "
        f"timers armed {report.timers_armed}, cancelled {report.timers_cancelled}"
    )
