"""Settings reach features through the sources their hooks set: read at each use, found without a desk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zhiban.core.settings import Settings, SettingsSource

BARE = """
import ipaddress, json, sys
from zhiban.mail import service as mail
from zhiban.notify import egress, service as notify
from zhiban.oncall import gap_mail
from zhiban.sla import notices
from zhiban.status import service as status
print(json.dumps({
    "smtp": notify.current_settings().smtp_url,
    "allow": egress.current_policy().allows_address(ipaddress.ip_address("10.1.2.3")),
    "mail": mail.desk_address(mail.current_settings()),
    "sla": notices.current_settings().base_url,
    "oncall": gap_mail.current_settings().base_url,
    "caps": status.current_settings().status_subscriptions_per_person,
    "hooks": sorted(m for m in sys.modules if m.endswith(".hooks") and m.startswith("zhiban.")),
}))
"""


def test_a_process_without_a_desk_reads_the_environment_through_each_features_hooks() -> None:
    """A bare worker or script imports no hooks up front: the first read brings the feature's hooks in."""
    env = {
        **os.environ,
        "ZHIBAN_SMTP_URL": "smtp://relay.example:25?from=desk@desk.example",
        "ZHIBAN_EGRESS_ALLOW": "10.0.0.0/8",
        "ZHIBAN_BASE_URL": "https://desk.example",
        "ZHIBAN_STATUS_SUBSCRIPTIONS_PER_PERSON": "3",
    }
    out = subprocess.run([sys.executable, "-c", BARE], env=env, capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert seen["smtp"] == env["ZHIBAN_SMTP_URL"] and seen["allow"] is True
    assert seen["mail"] == "desk@desk.example"
    assert seen["sla"] == seen["oncall"] == "https://desk.example" and seen["caps"] == 3
    assert {"zhiban.notify.hooks", "zhiban.mail.hooks", "zhiban.oncall.hooks", "zhiban.sla.hooks"} <= set(seen["hooks"])


def test_a_source_is_read_at_each_use_never_kept() -> None:
    source, given = SettingsSource("zhiban.core.clock"), iter(["https://one.example", "https://two.example"])
    source.read_from(lambda: Settings(base_url=next(given)))
    assert [source().base_url, source().base_url] == ["https://one.example", "https://two.example"]


def test_a_source_nobody_set_says_which_hooks_should_have() -> None:
    with pytest.raises(RuntimeError, match=r"zhiban\.core\.clock registered no source"):
        SettingsSource("zhiban.core.clock")()
