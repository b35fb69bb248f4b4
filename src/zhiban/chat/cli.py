"""`zhiban chat …`: bind a customer's chat group to an organization, list and unbind groups, know a chat user as
a customer user, and configure a platform's app (secrets from the environment or a prompt, never shown back)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from zhiban.core.console import console as cli_console
from zhiban.desk import operator_transaction
from zhiban.identity.model import Principal, Role

app = typer.Typer(help="Chat groups (Slack, Feishu/Lark, DingTalk) as a door to tickets: apps, bound groups, users.")
_OPERATOR = Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")
console = cli_console()
err = cli_console(stderr=True)
PLATFORM = Annotated[str, typer.Argument(help="slack, feishu or dingtalk")]


_operator = operator_transaction  # a transaction as the operator; a domain error is one line, exit 2


@app.command("bind")
def bind(
    platform: PLATFORM,
    group_id: Annotated[str, typer.Argument(help="Slack channel id (C…) or Feishu chat id (oc_…)")],
    organization: Annotated[str, typer.Option("--org", help="the organization (id or slug) the group files for")],
    requester: Annotated[
        str | None, typer.Option(help="customer user (e-mail or id) who files for chat users not mapped")
    ] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="a word that opens a ticket without a mention")] = None,
    urgent: Annotated[list[str] | None, typer.Option(help="an urgent word (replaces the defaults)")] = None,
    name: Annotated[str, typer.Option(help="a label for the group")] = "",
) -> None:
    """Bind a chat group to one organization: its mentions open that organization's tickets."""
    from zhiban.chat import service

    with _operator() as (desk, session):
        row = service.bind_group(
            session,
            desk.clock,
            _OPERATOR,
            platform=platform,
            group_id=group_id,
            organization=organization,
            requester=requester,
            keywords=keyword or None,
            urgent_words=urgent or None,
            name=name,
        )
        console.print(f"{row.platform} group {row.group_id} bound to {organization} (id {row.id})", highlight=False)


@app.command("unbind")
def unbind(platform: PLATFORM, group_id: Annotated[str, typer.Argument(help="the group's id")]) -> None:
    """Unbind a chat group: its messages are refused from now on."""
    from zhiban.chat import service

    with _operator() as (_desk, session):
        service.unbind_group(session, _OPERATOR, f"{platform}:{group_id}")
        console.print(f"{platform} group {group_id} unbound", highlight=False)


@app.command("groups")
def list_groups() -> None:
    """Every bound chat group with its organization and requester."""
    from zhiban.chat import service

    with _operator() as (_desk, session):
        table = Table("platform", "group", "name", "organization", "requester", "keywords", "urgent words")
        for row in service.groups(session, _OPERATOR):
            urgent = "(defaults)" if row.urgent_words is None else ", ".join(row.urgent_words)
            table.add_row(
                row.platform,
                row.group_id,
                row.name,
                row.organization_id,
                row.requester_id or "-",
                ", ".join(row.keywords or ()),
                urgent,
            )
        console.print(table)


@app.command("map")
def map_user(
    platform: PLATFORM,
    user_id: Annotated[str, typer.Argument(help="Slack user id (U…) or Feishu open_id (ou_…)")],
    person: Annotated[str, typer.Argument(help="the customer user (e-mail or id)")],
) -> None:
    """Know a chat user as a customer user: their messages are filed in their name."""
    from zhiban.chat import service

    with _operator() as (_desk, session):
        row = service.map_person(session, _OPERATOR, platform=platform, user_id=user_id, person=person)
        console.print(f"{row.platform} user {row.user_id} is {person}", highlight=False)


@app.command("app")
def set_app(
    platform: PLATFORM,
    signing_secret: Annotated[str | None, typer.Option(envvar="ZHIBAN_SLACK_SIGNING_SECRET")] = None,
    bot_token: Annotated[str | None, typer.Option(envvar="ZHIBAN_SLACK_BOT_TOKEN")] = None,
    app_id: Annotated[str | None, typer.Option(help="Feishu app id (cli_…)")] = None,
    app_secret: Annotated[
        str | None, typer.Option(envvar="ZHIBAN_CHAT_APP_SECRET", help="Feishu app / DingTalk robot")
    ] = None,
    verification_token: Annotated[str | None, typer.Option(envvar="ZHIBAN_FEISHU_VERIFICATION_TOKEN")] = None,
    encrypt_key: Annotated[str | None, typer.Option(envvar="ZHIBAN_FEISHU_ENCRYPT_KEY")] = None,
    bot_user_id: Annotated[str | None, typer.Option(help="the bot's own user id / open_id")] = None,
    api_url: Annotated[str | None, typer.Option(help="the platform's API base URL (default: the public one)")] = None,
) -> None:
    """Configure a platform's app (Slack: signing secret, bot token; Feishu: app id, secret, token, Encrypt Key;
    DingTalk: the robot's app secret)."""
    from zhiban.chat import service

    given = {
        "signing_secret": signing_secret,
        "bot_token": bot_token,
        "app_id": app_id,
        "app_secret": app_secret,
        "verification_token": verification_token,
        "encrypt_key": encrypt_key,
        "bot_user_id": bot_user_id,
        "api_url": api_url,
    }
    with _operator() as (desk, session):
        row = service.set_app(session, desk.clock, _OPERATOR, platform, {k: v for k, v in given.items() if v})
        console.print(f"{row.platform} app configured", highlight=False)
