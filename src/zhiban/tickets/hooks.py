"""Tickets' own hooks: search follows the tickets' changes (the words of a new ticket or message are cut after it
commits), and the attachment sweep finds the desk's var directory in the environment's settings (rule 6).

Uploads and mail take their limits and blob store from the settings of the desk that serves them (the edges and
mail pass them in); only the sweep job, which may run in a bare worker, reads them here.
"""

from __future__ import annotations

from zhiban.core.settings import get_settings
from zhiban.tickets import attachments, events, search

attachments.current_settings.read_from(get_settings)
events.follow("tickets.search", search.index_changes, kinds=search.INDEXED_KINDS)
