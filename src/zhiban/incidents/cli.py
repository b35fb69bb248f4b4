"""`zhiban incidents …`, `zhiban integrations …` and `zhiban ack`: incidents, services, policies, paging audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from zhiban.core.console import console as cli_console
from zhiban.core.errors import NotFound
from zhiban.desk import operator_transaction

app = typer.Typer(help="Incidents, services, escalation policies and the paging audit.", no_args_is_help=True)
integrations_app = typer.Typer(
    help="Where alerts come in: Events v2, Alertmanager, webhooks, heartbeats.", no_args_is_help=True
)
app.add_typer(integrations_app, name="integrations")
console = cli_console()
err = cli_console(stderr=True)


_session = operator_transaction  # a transaction as the operator; a domain error is one line, exit 2


JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=1))
        return
    table = Table()
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console.print(table)


@app.command("list")
def list_(
    status: Annotated[str, typer.Option(help="open, triggered, acknowledged, resolved")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """List incidents."""
    from zhiban.incidents import service

    with _session() as (_desk, session):
        rows = service.list_incidents(session, service.system_principal(), status=status, limit=200)
        found = [
            {
                "number": r.number,
                "id": r.id,
                "status": r.status,
                "urgency": r.urgency,
                "title": r.title,
                "triggered_at": r.triggered_at.isoformat(),
            }
            for r in rows
        ]
    _print(found, as_json, ["number", "id", "status", "urgency", "title", "triggered_at"])


def ack_command(
    incident: Annotated[str, typer.Argument(help="incident id or number")],
    as_: Annotated[str, typer.Option("--as", help="e-mail address of the agent acknowledging")],
) -> None:
    """Acknowledge an incident: paging stops."""
    from zhiban.incidents import service

    with _session() as (desk, session):
        row = service.acknowledge_as(session, desk.clock, incident, as_, via="cli")
        console.print(f"incident #{row.number} {row.status}", highlight=False)


def resolve_command(
    incident: Annotated[str, typer.Argument(help="incident id or number")],
    as_: Annotated[str, typer.Option("--as", help="e-mail address of the agent resolving")],
) -> None:
    """Resolve an incident."""
    from zhiban.identity.service import principal_of
    from zhiban.incidents import service

    with _session() as (desk, session):
        person = service.find_person(session, as_)
        if person is None:
            raise NotFound(f"no person {as_!r}")
        row = service.resolve(
            session, desk.clock, principal_of(person), service.find_incident_id(session, incident), "cli"
        )
        console.print(f"incident #{row.number} {row.status}", highlight=False)


app.command("ack")(ack_command)
app.command("resolve")(resolve_command)


@app.command()
def audit(
    grace: Annotated[int, typer.Option(help="seconds a step may be late before it counts")] = 120,
    as_json: JsonOpt = False,
) -> None:
    """Overdue escalation steps, and pages of triggered incidents whose outcome is unknown; exit 1 if any."""
    from zhiban.incidents.audit import overdue_steps, unknown_pages

    with _session() as (desk, session):
        late = overdue_steps(session, desk.clock, timedelta(seconds=grace))
        rows = [
            {
                "problem": "overdue step",
                "incident": s.incident_number,
                "incident_id": s.incident_id,
                "step": s.step_no,
                "due_at": s.due_at.isoformat(),
                "late_seconds": int(s.late_by.total_seconds()),
            }
            for s in late
        ]
        # A hand-off cut short on e-mail, SMS or voice is not repeated: someone may not have been reached.
        unknown = [
            {
                "problem": "page outcome unknown",
                "incident": p.incident_number,
                "incident_id": p.incident_id,
                "channel": p.channel,
                "person": p.person_id,
                "handed_at": p.handed_at.isoformat() if p.handed_at else None,
                "notification": p.notification_id,
            }
            for p in unknown_pages(session)
        ]
    if as_json:
        _print(rows + unknown, True, [])
    else:
        _print(rows, False, ["incident", "step", "due_at", "late_seconds"])
        if unknown:
            _print(unknown, False, ["incident", "channel", "person", "handed_at"])
    if rows or unknown:
        raise typer.Exit(1)


@app.command("services")
def services_(as_json: JsonOpt = False) -> None:
    """List services."""
    from zhiban.incidents import service

    with _session() as (_desk, session):
        rows = [
            {"id": r.id, "name": r.name, "policy_id": r.policy_id or "", "urgency_rule": r.urgency_rule}
            for r in service.list_services(session)
        ]
    _print(rows, as_json, ["id", "name", "policy_id", "urgency_rule"])


@app.command("create-service")
def create_service(
    name: Annotated[str, typer.Argument()],
    policy: Annotated[str | None, typer.Option(help="escalation policy name or id")] = None,
    urgency: Annotated[str, typer.Option(help="high, low or severity")] = "high",
    ack_timeout: Annotated[int, typer.Option(help="minutes before an acknowledgement re-triggers (0: never)")] = 30,
) -> None:
    """Add a service."""
    from zhiban.incidents import service

    with _session() as (desk, session):
        row = service.create_service(
            session, desk.clock, name=name, policy=policy, urgency_rule=urgency, ack_timeout_minutes=ack_timeout
        )
        console.print(f"service {row.name} ({row.id})", highlight=False)


@app.command("create-policy")
def create_policy(
    name: Annotated[str, typer.Argument()],
    levels: Annotated[Path, typer.Option(help="JSON file: a list of levels (delay_minutes, targets, condition)")],
    repeats: Annotated[int, typer.Option()] = 0,
) -> None:
    """Add an escalation policy from a JSON file of levels."""
    from zhiban.incidents import service

    try:
        spec = json.loads(levels.read_text(encoding="utf-8")[:1_000_000])
    except (OSError, ValueError) as exc:
        err.print(f"error: cannot read {levels}: {exc}", markup=False)
        raise typer.Exit(2) from None
    with _session() as (desk, session):
        row = service.create_policy(session, desk.clock, name=name, levels=spec, repeats=repeats)
        console.print(f"policy {row.name} ({row.id})", highlight=False)


@app.command("policies")
def policies(as_json: JsonOpt = False) -> None:
    """List escalation policies."""
    from zhiban.incidents import service

    with _session() as (_desk, session):
        rows = [
            {"id": r.id, "name": r.name, "levels": len(r.levels), "repeats": r.repeats}
            for r in service.list_policies(session)
        ]
    _print(rows, as_json, ["id", "name", "levels", "repeats"])


@integrations_app.command("list")
def integrations_list(as_json: JsonOpt = False) -> None:
    """List integrations with their keys."""
    from zhiban.incidents import integrations

    with _session() as (_desk, session):
        rows = [
            {"id": r.id, "type": r.type, "name": r.name, "service_id": r.service_id, "key": r.key}
            for r in integrations.list_integrations(session)
        ]
    _print(rows, as_json, ["id", "type", "name", "service_id", "key"])


@integrations_app.command("create")
def integrations_create(
    type_: Annotated[str, typer.Option("--type", help="events-v2, alertmanager, webhook or heartbeat")],
    service_name: Annotated[str, typer.Option("--service", help="service name or id")],
    name: Annotated[str, typer.Option(help="a label")] = "",
    interval: Annotated[int | None, typer.Option(help="heartbeat: seconds between expected pings")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an integration; prints its key (the Events v2 routing key)."""
    from zhiban.incidents import integrations

    with _session() as (desk, session):
        row = integrations.create_integration(
            session, desk.clock, type_=type_, service_ref=service_name, name=name, heartbeat_seconds=interval
        )
        found = {"id": row.id, "type": row.type, "name": row.name, "service_id": row.service_id, "key": row.key}
    _print([found], as_json, ["id", "type", "name", "key"])


# Mounted at the top level by zhiban.cli: `zhiban integrations …` and `zhiban ack …`, as the on-call guide says.
root_groups = {"integrations": integrations_app}
root_commands = {"ack": ack_command}
