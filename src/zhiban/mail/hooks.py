"""Mail the requester when an agent answers in public (subscribed to ticket events at start-up).

Ticket mail reads the desk address and portal link at each use from the environment's settings (handed over here);
reply tokens are signed with the desk's secret key (`configure`), else the environment's desk's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.settings import get_settings
from zhiban.mail.reply_token import configure_reply_key, reply_key_default
from zhiban.mail.service import current_settings, queue_agent_reply
from zhiban.tickets import events
from zhiban.tickets.model import EventKind, TicketChange

if TYPE_CHECKING:
    from zhiban.desk import Desk


def on_ticket_event(session: Session, clock: Clock, change: TicketChange) -> None:
    """On agent_reply, queue the reply's mail in the same transaction (so it is sent iff the reply commits)."""
    if change.kind != EventKind.AGENT_REPLY:
        return
    ticket = change.ticket
    from zhiban.drills.service import is_drill_ticket

    if is_drill_ticket(session, ticket.id):
        return  # a drill's synthetic requester is never mailed
    queue_agent_reply(
        session,
        clock,
        ticket,
        author_id=change.actor_id,
        comment_id=change.comment_id,
        settings=current_settings(),
    )


events.subscribe(on_ticket_event)
current_settings.read_from(get_settings)  # the environment's, read at each use (as notify reads its relay)


def _reply_key_from_environment() -> str:
    """A process without a desk (a bare engine worker) signs reply tokens as the environment's desk would."""
    from zhiban.desk import secret_key_for

    return secret_key_for(get_settings())


reply_key_default(_reply_key_from_environment)


def configure(desk: Desk) -> None:
    """Sign reply tokens with this desk's secret key."""
    configure_reply_key(desk.secret_key)
