"""`zhiban status …`: which services the public status pages show, on which component, under which title."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from zhiban.identity.model import Principal

app = typer.Typer(help="Status pages: publish a service's incidents under a public component and title.")


def _operator() -> Principal:
    from zhiban.identity.model import Principal, Role

    # The CLI runs on the desk's own host, as its operator: an admin.
    return Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")


def _run(action: str, **kwargs: str) -> list[dict[str, str]]:
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.status import service

    desk = _desk()
    operator = _operator()
    try:
        with desk.transaction() as session:
            if action == "publish":
                ref, component, title = kwargs["service"], kwargs["component"], kwargs["title"]
                service.publish_service(session, desk.clock, operator, ref, component=component, title=title)
            elif action == "unpublish":
                service.unpublish_service(session, operator, kwargs["service"])
            rows = service.published_services(session, operator)
            return [{"service": name, "component": r.component, "title": r.title} for r, name in rows]
    except ZhibanError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None


def _print(rows: list[dict[str, str]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        typer.echo(f"{row['service']}\t{row['component']}\t{row['title']}")


JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("publish")
def publish(
    service: Annotated[str, typer.Option(help="service name or id")],
    component: Annotated[str, typer.Option(help="public component (e.g. cn-east, edge network)")],
    title: Annotated[str, typer.Option(help="what the pages call its incidents")],
    as_json: JsonOpt = False,
) -> None:
    """Show a service's incidents on the status pages, on a public component under a public title."""
    _print(_run("publish", service=service, component=component, title=title), as_json)


@app.command("unpublish")
def unpublish(service: Annotated[str, typer.Option(help="service name or id")], as_json: JsonOpt = False) -> None:
    """Stop showing a service's incidents (those an agent published by an update stay)."""
    _print(_run("unpublish", service=service), as_json)


@app.command("published")
def published(as_json: JsonOpt = False) -> None:
    """List the published services."""
    _print(_run("list"), as_json)
