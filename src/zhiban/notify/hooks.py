"""Notify reads the SMTP relay, the egress allowlist and the inbox's retention at each use, from the environment's
settings.

Read at each use (`get_settings` is the environment's, cached until cleared), so the relay and the allowlist an
operator or a test sets are the ones the next save or send sees; a desk and a bare engine worker read the same.
"""

from __future__ import annotations

from zhiban.core.settings import get_settings
from zhiban.notify import egress, retention, service

service.current_settings.read_from(get_settings)
egress.current_settings.read_from(get_settings)
retention.current_settings.read_from(get_settings)  # the inbox's retention days, read at each run
