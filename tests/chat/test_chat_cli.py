"""`zhiban chat …` against a SQLite desk: configure an app, bind, list, map and unbind; errors are one line."""

from __future__ import annotations

import os
from pathlib import Path

from tests.mail.test_mail_cli import cli_desk  # noqa: F401  (the fixture)
from tests.zhiban_cli import zhiban
from zhiban.desk import Desk


def _run(desk: Desk, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": desk.settings.database_url, "ZHIBAN_VAR_DIR": desk.settings.var_dir}
    env["COLUMNS"] = "200"
    ran = zhiban("chat", *args, env=env)
    return ran.returncode, ran.stdout, ran.stderr


def test_chat_groups_from_the_cli(cli_desk: Desk, tmp_path: Path) -> None:  # noqa: F811
    code, out, _ = _run(cli_desk, "app", "slack", "--signing-secret", "s3cret-sign", "--bot-token", "xoxb-1")
    assert code == 0 and "slack app configured" in out
    code, _, err = _run(cli_desk, "app", "feishu", "--app-id", "cli_a1")
    assert code == 2 and err.strip() == "error: a feishu app needs app_secret, verification_token"
    code, out, _ = _run(
        cli_desk, "bind", "slack", "C0LIVECO", "--org", "liveco", "--requester", "alice@liveco.test", "--urgent", "挂了"
    )
    assert code == 0 and "slack group C0LIVECO bound to liveco" in out
    code, _, err = _run(cli_desk, "bind", "slack", "C0LIVECO", "--org", "classmate")
    assert code == 2 and "already bound" in err
    code, _, err = _run(cli_desk, "bind", "slack", "C0OTHER", "--org", "liveco", "--requester", "bob@classmate.test")
    assert code == 2 and "customer user of the group's organization" in err
    code, out, _ = _run(cli_desk, "map", "slack", "U0ALICE", "alice@liveco.test")
    assert code == 0
    code, out, _ = _run(cli_desk, "groups")
    assert code == 0 and "C0LIVECO" in out and "挂了" in out and "s3cret" not in out
    code, out, _ = _run(cli_desk, "unbind", "slack", "C0LIVECO")
    assert code == 0 and "unbound" in out
    code, _, err = _run(cli_desk, "unbind", "slack", "C0LIVECO")
    assert code == 2 and err.startswith("error: no bound chat group")
