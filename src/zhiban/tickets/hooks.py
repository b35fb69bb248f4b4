"""Tickets follow their own changes for search: the words of a new ticket or message are cut after it commits."""

from __future__ import annotations

from zhiban.tickets import events, search

events.follow("tickets.search", search.index_changes, kinds=search.INDEXED_KINDS)
