"""The agent queue's one read across features: open tickets in SLA order, joined with their ticket fields,
organization name and most urgent clock. The read side: this query may read tickets' and identity's tables,
because the queue page is the desk's hot read and one indexed join beats three round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, select
from sqlalchemy.orm import Session

from zhiban.identity.store import OrganizationRow
from zhiban.sla.store import ClockRow, SlaTicketRow
from zhiban.tickets.store import TicketRow


def queue_rows(session: Session, limit: int) -> Sequence[Row[*tuple[Any, ...]]]:
    """(ticket id, calendar id, subject, priority, status, organization id, created at, organization name,
    urgent metric, state, due at, calendar) of open tickets, most urgent first: one walk of the queue index."""
    st, tk = cast(Table, SlaTicketRow.__table__), cast(Table, TicketRow.__table__)
    org, urgent = cast(Table, OrganizationRow.__table__), cast(Table, ClockRow.__table__).alias("urgent")
    query = (
        select(
            st.c.ticket_id,
            st.c.calendar_id,
            tk.c.subject,
            tk.c.priority,
            tk.c.status,
            tk.c.organization_id,
            tk.c.created_at,
            org.c.name,
            urgent.c.metric,
            urgent.c.state,
            urgent.c.due_at,
            urgent.c.calendar,
        )
        .select_from(st)
        .join(tk, tk.c.id == st.c.ticket_id)
        .outerjoin(org, org.c.id == tk.c.organization_id)
        .outerjoin(
            urgent,
            (urgent.c.ticket_id == st.c.ticket_id)
            & (urgent.c.metric == st.c.urgent_metric)
            & (urgent.c.cycle == st.c.urgent_cycle),
        )
        .where(st.c.is_open.is_(True))
        .order_by(st.c.sort_key, st.c.ticket_id)
        .limit(limit)
    )
    return session.execute(query).all()
