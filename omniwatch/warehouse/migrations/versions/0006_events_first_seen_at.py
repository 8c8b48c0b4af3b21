"""events.first_seen_at: when our connector first saw each news item

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:30:00

Backfill of existing rows (the only times they carry): the time the row's source was recorded or
fetched (RSS ``payload.fetched_at``; for GDELT and EDGAR the publication stamp, ``available_time``,
which is when a recorded export or filing could first be read), capped at ``ingested_at`` (a row
was certainly seen by the time it was written). A re-fetch rewrote ``payload.fetched_at`` with its
own, later time, so the cap keeps a live row's first write as its first sight.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BATCH = 5_000


def _utc(value):
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _first_seen(row) -> datetime | None:
    payload = row.payload if isinstance(row.payload, dict) else {}
    recorded = _utc(payload.get("fetched_at")) if row.source == "rss" else None
    candidates = [t for t in (recorded or _utc(row.available_time), _utc(row.ingested_at)) if t is not None]
    return min(candidates) if candidates else None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=True))
    events = sa.table('events', sa.column('id', sa.BigInteger()), sa.column('source', sa.String()),
                      sa.column('available_time', sa.DateTime(timezone=True)),
                      sa.column('ingested_at', sa.DateTime(timezone=True)), sa.column('payload', sa.JSON()),
                      sa.column('first_seen_at', sa.DateTime(timezone=True)))
    conn = op.get_bind()
    update = (sa.update(events).where(events.c.id == sa.bindparam('row_id'))
              .values(first_seen_at=sa.bindparam('seen', type_=sa.DateTime(timezone=True))))
    last_id = None
    while True:
        query = sa.select(events.c.id, events.c.source, events.c.available_time, events.c.ingested_at,
                          events.c.payload).order_by(events.c.id).limit(_BATCH)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        rows = conn.execute(query).fetchall()
        if not rows:
            break
        params = [{'row_id': r.id, 'seen': seen} for r in rows if (seen := _first_seen(r)) is not None]
        if params:
            conn.execute(update, params)
        last_id = rows[-1].id
    # Feature runs read each window by first sight too (assets/features.py _liquid_news).
    op.create_index('ix_events_first_seen_at', 'events', ['first_seen_at'])


def downgrade() -> None:
    op.drop_index('ix_events_first_seen_at', table_name='events')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('first_seen_at')
