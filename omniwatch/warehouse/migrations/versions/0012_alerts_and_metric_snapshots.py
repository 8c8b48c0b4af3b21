"""alert notifications and metric snapshots: Alertmanager's webhook and the SLO windows

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:00:00

``alert_notifications``: one row per alert state Alertmanager posts to ``alerts/notify``
(unique on fingerprint, start and status, so its repeats are not new rows). ``metric_snapshots``:
the SLO series of scrapes of the API's ``/metrics``, the baselines of SLO windows computed
without a Prometheus server.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'alert_notifications',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('alertname', sa.String(length=128), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=True),
        sa.Column('route', sa.String(length=256), nullable=True),
        sa.Column('labels', sa.JSON(), nullable=False),
        sa.Column('annotations', sa.JSON(), nullable=False),
        sa.Column('starts_at', _TS, nullable=False),
        sa.Column('ends_at', _TS, nullable=True),
        sa.Column('generator_url', sa.Text(), nullable=True),
        sa.Column('receiver', sa.String(length=128), nullable=False),
        sa.Column('group_key', sa.Text(), nullable=False),
        sa.Column('received_by', sa.String(length=128), nullable=False),
        sa.Column('received_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_alert_notifications'),
        sa.UniqueConstraint('fingerprint', 'starts_at', 'status',
                            name='uq_alert_notifications_fingerprint_starts_at_status'),
    )
    op.create_index('ix_alert_notifications_alertname_received_at', 'alert_notifications',
                    ['alertname', 'received_at'])
    op.create_table(
        'metric_snapshots',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('target', sa.String(length=512), nullable=False),
        sa.Column('scraped_at', _TS, nullable=False),
        sa.Column('samples', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_metric_snapshots'),
        sa.UniqueConstraint('target', 'scraped_at', name='uq_metric_snapshots_target_scraped_at'),
    )


def downgrade() -> None:
    op.drop_table('metric_snapshots')
    op.drop_index('ix_alert_notifications_alertname_received_at', table_name='alert_notifications')
    op.drop_table('alert_notifications')
