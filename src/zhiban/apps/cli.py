"""`zhiban apps …`: customer apps and their ingest keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

app = typer.Typer(help="Customer apps and their telemetry ingest keys.", no_args_is_help=True)


def _emit(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    from rich.table import Table

    from zhiban.core.console import console as cli_console

    console = cli_console()
    if as_json:
        import orjson

        typer.echo(orjson.dumps(rows if len(rows) != 1 or title != "created" else rows[0]).decode())
        return
    table = Table(title=title)
    columns = list(rows[0]) if rows else ["app_id", "organization", "name", "timezone"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] is not None else "" for c in columns))
    console.print(table)


def _row(session: Any, app_row: Any, key: str | None = None) -> dict[str, Any]:
    from zhiban.apps.service import SYSTEM
    from zhiban.identity import service as identity

    org = identity.get_organization(session, SYSTEM, app_row.organization_id)
    out = {
        "app_id": app_row.app_id,
        "organization": org.slug,
        "name": app_row.name,
        "timezone": app_row.timezone,
        "created_at": app_row.created_at.isoformat(),
    }
    if key is not None:
        out["ingest_key"] = key
    return out


def _fail(detail: str) -> None:
    typer.echo(f"error: {detail}", err=True)
    raise typer.Exit(2)


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="only this organization (slug)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List customer apps."""
    from zhiban.apps import service
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk

    desk = _desk()
    try:
        with desk.transaction() as session:
            org_id = service.organization_id_by_slug(session, org) if org else None
            rows = [_row(session, a) for a in service.list_apps(session, service.SYSTEM, org_id)]
    except ZhibanError as exc:
        _fail(exc.detail)
    _emit(rows, as_json, "apps")


@app.command("create")
def create(
    org: Annotated[str, typer.Option(help="owner organization (slug)")],
    app_id: Annotated[str, typer.Option("--app-id", help="the app_id its SDKs send")],
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: the organization's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (with the ingest key)")] = False,
) -> None:
    """Register an app; its ingest key is printed once."""
    from zhiban.apps import service
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk

    desk = _desk()
    try:
        with desk.transaction() as session:
            org_id = service.organization_id_by_slug(session, org)
            issued = service.create_app(
                session, desk.clock, service.SYSTEM, app_id=app_id, organization_id=org_id, name=name, timezone=timezone
            )
            row = _row(session, issued.app, issued.ingest_key)
    except ZhibanError as exc:
        _fail(exc.detail)
    _emit([row], as_json, "created")


@app.command("rotate-key")
def rotate_key(
    app_id: Annotated[str, typer.Option("--app-id", help="the app")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Issue a new ingest key (printed once); the old key stops working."""
    from zhiban.apps import service
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk

    desk = _desk()
    try:
        with desk.transaction() as session:
            issued = service.rotate_key(session, desk.clock, service.SYSTEM, app_id)
            row = _row(session, issued.app, issued.ingest_key)
    except ZhibanError as exc:
        _fail(exc.detail)
    _emit([row], as_json, "created")
