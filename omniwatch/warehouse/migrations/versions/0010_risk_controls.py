"""risk controls: the append-only audit of kill switches and breakers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:45:00

``risk_controls`` holds every kill-switch trigger and reset (who, why, when), every daily-loss
trip and every keyed consecutive-loss reset; a control's state is its latest row, so the state
survives a restart and any process reads the same. Blocks themselves stay in ``risk_events``.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'risk_controls',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('track', sa.String(length=8), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('control', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.Column('as_of', _TS, nullable=False),
        sa.Column('created_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_risk_controls'),
    )
    op.create_index('ix_risk_controls_track_strategy_id_control_as_of', 'risk_controls',
                    ['track', 'strategy_id', 'control', 'as_of'])


def downgrade() -> None:
    op.drop_index('ix_risk_controls_track_strategy_id_control_as_of', table_name='risk_controls')
    op.drop_table('risk_controls')
