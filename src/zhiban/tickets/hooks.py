"""Tickets' settings: the attachment sweep finds the desk's var directory in the environment's settings (rule 6).

Uploads and mail take their limits and blob store from the settings of the desk that serves them (the edges and
mail pass them in); only the sweep job, which may run in a bare worker, reads them here.
"""

from __future__ import annotations

from zhiban.core.settings import get_settings
from zhiban.tickets import attachments

attachments.current_settings.read_from(get_settings)
