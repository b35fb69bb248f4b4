"""scopes: tokens minted before the scopes were split keep what their coarse scopes allowed

Before, `tickets:read` also guarded on-call reads and reports, `tickets:write` knowledge-base and on-call writes, and
the other reads were open to any token; the finer scopes that now guard those are added to existing tokens. New
tokens get exactly what they ask for.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen here (not imported) so a later change to the app cannot change what this migration did.
LEGACY_GRANTS = {
    "tickets:read": ("oncall:read", "reports:read", "kb:read", "incidents:read", "telemetry:read"),
    "tickets:write": ("oncall:write", "kb:write"),
}

tokens = sa.table("api_tokens", sa.column("id", sa.String(32)), sa.column("scopes", sa.JSON()))


def widened(scopes: list[str]) -> list[str]:
    """The scopes plus the finer ones their coarse scopes stood for, in a stable order."""
    out = list(scopes)
    for scope in scopes:
        out.extend(s for s in LEGACY_GRANTS.get(scope, ()) if s not in out)
    return out


def upgrade() -> None:
    conn = op.get_bind()
    for token_id, scopes in conn.execute(sa.select(tokens.c.id, tokens.c.scopes)).all():
        new = widened(list(scopes or []))
        if new != list(scopes or []):
            conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(scopes=new))


def downgrade() -> None:
    # The added scopes are unknown to the older code's checks and harmless there; nothing to undo.
    pass
