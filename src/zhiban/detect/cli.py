"""`zhiban detect …`: replay recorded telemetry, explicit rules, organizations' notice webhook, demo faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Detection: replay telemetry, explicit rules, notice webhooks, demo faults.", no_args_is_help=True
)
rules_app = typer.Typer(
    help="Explicit rules per plan (metric, window, consecutive windows, threshold).", no_args_is_help=True
)
webhook_app = typer.Typer(help="Organizations' proactive-notice webhook.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(webhook_app, name="notice-webhook")


def _fail(detail: str) -> None:
    typer.echo(f"error: {detail}", err=True)
    raise typer.Exit(2)


def _admin() -> Any:
    from zhiban.identity.model import Principal, Role

    return Principal(person_id="cli", role=Role.ADMIN, organization_id=None, name="zhiban cli")


@app.command("replay")
def replay(
    source: Annotated[Path, typer.Argument(help="recorded telemetry: NDJSON, gzip or not")],
    out: Annotated[Path, typer.Option("--out", help="write one §4 detection per line here")],
    rules: Annotated[Path | None, typer.Option(help="JSON list of rules to apply too")] = None,
    app_plan: Annotated[list[str] | None, typer.Option(help="app=plan, for rules scoped by plan (repeatable)")] = None,
) -> None:
    """Run recorded telemetry through parse → aggregate → detect → localize, in event time, as fast as it goes."""
    from zhiban.core.errors import ZhibanError
    from zhiban.detect.replay import replay_file
    from zhiban.detect.rules import Rule

    try:
        loaded: list[Rule] = []
        if rules is not None:
            data = json.loads(rules.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                _fail("--rules must hold a JSON list of rules")
            loaded = [Rule.from_json(item) for item in data]
        plans: dict[str, str] = {}
        for item in app_plan or []:
            name, sep, plan = item.partition("=")
            if not sep:
                _fail(f"--app-plan {item!r}: use app=plan")
            plans[name.strip()] = plan.strip()
        summary = replay_file(source, out, rules=loaded, plan_of=plans.get)
    except (ZhibanError, OSError, ValueError) as exc:
        _fail(getattr(exc, "detail", None) or str(exc))
        return
    typer.echo(
        json.dumps(
            {
                "out": str(out),
                "detections": len(summary.detections),
                "reports": summary.reports,
                "windows": summary.windows,
                "seconds": round(summary.seconds, 2),
                "windows_per_s": round(summary.windows_per_second),
                "failures": summary.failures,
            }
        )
    )
    if summary.failures:  # isolated as live isolates them: the rest was detected, but say so
        typer.echo(f"warning: detection steps failed and were skipped: {summary.failures}", err=True)


@rules_app.command("list")
def rules_list() -> None:
    """Print the rules as JSON lines."""
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    desk = _desk()
    with desk.transaction() as session:
        for row in service.list_rules(session, _admin()):
            typer.echo(json.dumps(service.rule_json(row)))


@rules_app.command("add")
def rules_add(
    name: Annotated[str, typer.Option(help="unique name, e.g. enterprise-join-99")],
    metric: Annotated[str, typer.Option(help="a §3 metric, e.g. join_success_rate")],
    below: Annotated[float | None, typer.Option(help="breach when the metric is below this")] = None,
    above: Annotated[float | None, typer.Option(help="breach when the metric is above this")] = None,
    window: Annotated[int, typer.Option(help="window length in seconds (multiple of 10)")] = 60,
    consecutive: Annotated[int, typer.Option(help="consecutive breaching windows")] = 2,
    min_sessions: Annotated[int, typer.Option(help="sessions a window needs to count")] = 20,
    plan: Annotated[str | None, typer.Option(help="only apps of organizations on this plan")] = None,
    app_id: Annotated[str | None, typer.Option("--app", help="only this app")] = None,
) -> None:
    """Add a rule: e.g. --metric join_success_rate --below 0.99 --window 60 --consecutive 2 --plan enterprise."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    if (below is None) == (above is None):
        _fail("give exactly one of --below or --above")
    data = {
        "name": name,
        "metric": metric,
        "comparison": "below" if below is not None else "above",
        "threshold": below if below is not None else above,
        "window_seconds": window,
        "consecutive": consecutive,
        "min_sessions": min_sessions,
        "plan": plan,
        "app_id": app_id,
    }
    desk = _desk()
    try:
        with desk.transaction() as session:
            row = service.create_rule(session, desk.clock, _admin(), data)
            typer.echo(json.dumps(service.rule_json(row)))
    except ZhibanError as exc:
        _fail(exc.detail)


@rules_app.command("set")
def rules_set(
    rule: Annotated[str, typer.Argument(help="rule id or name")],
    threshold: Annotated[float | None, typer.Option(help="new threshold")] = None,
    window: Annotated[int | None, typer.Option(help="new window length in seconds")] = None,
    consecutive: Annotated[int | None, typer.Option(help="new number of consecutive windows")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="switch the rule on or off")] = None,
) -> None:
    """Change a rule."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    changes = {
        k: v
        for k, v in {
            "threshold": threshold,
            "window_seconds": window,
            "consecutive": consecutive,
            "enabled": enabled,
        }.items()
        if v is not None
    }
    desk = _desk()
    try:
        with desk.transaction() as session:
            row = service.update_rule(session, desk.clock, _admin(), rule, changes)
            typer.echo(json.dumps(service.rule_json(row)))
    except ZhibanError as exc:
        _fail(exc.detail)


@rules_app.command("delete")
def rules_delete(rule: Annotated[str, typer.Argument(help="rule id or name")]) -> None:
    """Remove a rule."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    desk = _desk()
    try:
        with desk.transaction() as session:
            service.delete_rule(session, _admin(), rule)
    except ZhibanError as exc:
        _fail(exc.detail)
    typer.echo(f"rule {rule} deleted")


def _org_id(session: Any, slug: str) -> str:
    from zhiban.apps.service import organization_id_by_slug

    return organization_id_by_slug(session, slug)


@webhook_app.command("set")
def webhook_set(
    org: Annotated[str, typer.Option(help="organization slug")],
    url: Annotated[str, typer.Option(help="the customer's HTTPS endpoint")],
    secret: Annotated[str, typer.Option(help="shared secret (16+ characters) that signs each notice")],
) -> None:
    """Send an organization's proactive notices to its webhook too."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    desk = _desk()
    try:
        with desk.transaction() as session:
            row = service.set_notice_webhook(
                session, desk.clock, _admin(), _org_id(session, org), url=url, secret=secret
            )
            typer.echo(json.dumps(service.webhook_json(row, row.organization_id)))
    except ZhibanError as exc:
        _fail(exc.detail)


@webhook_app.command("show")
def webhook_show(org: Annotated[str, typer.Option(help="organization slug")]) -> None:
    """Show where an organization's notices go (not the secret)."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    desk = _desk()
    try:
        with desk.transaction() as session:
            org_id = _org_id(session, org)
            typer.echo(json.dumps(service.webhook_json(service.get_notice_webhook(session, _admin(), org_id), org_id)))
    except ZhibanError as exc:
        _fail(exc.detail)


@webhook_app.command("clear")
def webhook_clear(org: Annotated[str, typer.Option(help="organization slug")]) -> None:
    """Stop sending an organization's notices to its webhook."""
    from zhiban.core.errors import ZhibanError
    from zhiban.desk import from_environment as _desk
    from zhiban.detect import service

    desk = _desk()
    try:
        with desk.transaction() as session:
            service.clear_notice_webhook(session, _admin(), _org_id(session, org))
    except ZhibanError as exc:
        _fail(exc.detail)
    typer.echo("cleared")


# Kept by hand so that `zhiban --help` does not import the simulator (numpy); a test holds it to FAULT_KINDS.
FAULT_HELP = """Inject a named fault into the running desk's live simulation (POST /api/v1/simulator/faults).

\b
SPEC is kind:app:slice:start:duration[:magnitude]
  slice     dim=value[,dim=value] ANDed (may be empty: the whole app); dims: region, country, isp,
            network, platform, sdk_version, edge, role, channel
  start     +1m (from now) or an ISO 8601 time with a zone; duration 10m, 1h
  magnitude optional; each kind's default and meaning:
\b
faults:
  edge_packet_loss          8     added packet loss, % (slice needs edge)
  isp_congestion            3     +1.5*m % loss, +40*m ms rtt
  sdk_release_join_failure  0.35  probability that a join fails (slice needs sdk_version)
  av_sync_drift             400   audio lead reached at mid-span, ms
  edge_overload             250   added rtt, ms (slice needs edge)
  app_outage                1     probability that a join fails; sessions drop
benign (must raise nothing):
  evening_ramp, festival_surge, night_low_volume, sdk_rollout (slice: platform and sdk_version)
\b
e.g. zhiban detect fault edge_packet_loss:liveco:edge=sh-edge-07:+1m:10m
     zhiban detect fault isp_congestion:classmate:isp=china-mobile,region=cn-east:+0m:15m:4
The desk is --url, else ZHIBAN_BASE_URL, else http://127.0.0.1:$ZHIBAN_PORT."""


def _desk_url() -> str:
    from zhiban.core.settings import get_settings

    settings = get_settings()
    if "base_url" in settings.model_fields_set:
        return settings.base_url
    return f"http://127.0.0.1:{settings.port}"


@app.command("fault", help=FAULT_HELP)
def fault(
    spec: Annotated[str, typer.Argument(help="kind:app:slice:start:duration[:magnitude] (see above)")],
    url: Annotated[str | None, typer.Option(help="the running desk (default: ZHIBAN_BASE_URL or ZHIBAN_PORT)")] = None,
    token: Annotated[str, typer.Option(envvar="ZHIBAN_TOKEN", help="an admin's API token")] = "",
) -> None:
    import httpx

    if not token:
        _fail("--token (or ZHIBAN_TOKEN) is needed: an admin's API token")
    url = url or _desk_url()
    try:
        response = httpx.post(
            url.rstrip("/") + "/api/v1/simulator/faults",
            json={"spec": spec},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        _fail(f"could not reach {url}: {exc}")
        return
    if response.status_code != 201:
        problem = _problem(response)
        if problem is None:  # not a desk's answer: say so rather than pass on another server's words
            _fail(f"{url} answered HTTP {response.status_code} but not as a zhiban desk: is --url right?")
            return
        _fail(f"HTTP {response.status_code}: {problem.get('detail') or problem.get('title')}")
    typer.echo(json.dumps(response.json()))


def _problem(response: Any) -> dict[str, Any] | None:
    """The desk's RFC 9457 problem in an answer, or None when the answer is not one of ours."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return body if isinstance(kind, str) and kind.startswith("https://zhiban.dev/problems/") else None


bench_app = typer.Typer(help="Benchmarks the desk ships with.", no_args_is_help=True)


@bench_app.command("nab")
def bench_nab(
    out: Annotated[Path, typer.Option(help="folder for NAB-format results (<category>/zhiban_<file>.csv)")],
    data: Annotated[
        Path | None, typer.Option(help="NAB data folder (data/, labels/); default ../shared/data/nab")
    ] = None,
    per_file: Annotated[bool, typer.Option(help="print TP/FN/FP per file at the standard threshold")] = False,
) -> None:
    """Run the detector core over every NAB file, score it by NAB's rules, print the three profiles and the time."""
    from zhiban.detect.nab import main as nab_main

    argv = ["--out", str(out)]
    if data is not None:
        argv += ["--data", str(data)]
    if per_file:
        argv.append("--per-file")
    code = nab_main(argv)
    if code:
        raise typer.Exit(code)


# Mounted at the top level by zhiban.cli: `zhiban bench nab --out DIR`.
root_groups = {"bench": bench_app}
