"""`python -m zhiban.engine --handlers zhiban.incidents.worker_registry`: every handler of the desk."""

from __future__ import annotations

from zhiban.handlers import desk_registry

registry = desk_registry()
