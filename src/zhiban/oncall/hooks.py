"""On-call gap mail links to the desk's portal as the environment's settings name it, read at each mail."""

from __future__ import annotations

from zhiban.core.settings import get_settings
from zhiban.oncall import gap_mail

gap_mail.current_settings.read_from(get_settings)
