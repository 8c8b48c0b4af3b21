"""execution decisions: what execution/run decided per target, and why

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:00:00

One row per target of an ``execution/run``: the signal and prediction it acted on (model version,
feature snapshot), the sizing (target, held and new weight, the forecasts behind the target), the
risk decision, the action (``trade``, ``hold``, ``denied``, ``not_sent``, ``venue_unavailable``) and
the order it placed. ``execution/audit/{decision_id}`` starts here and follows the order to its
fills, the position and the PnL. Append only: a decision is never rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'execution_decisions',
        sa.Column('decision_id', sa.String(length=36), nullable=False),
        sa.Column('run_id', sa.String(length=36), nullable=False),
        sa.Column('track', sa.String(length=8), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=16), nullable=False),
        sa.Column('horizon', sa.String(length=8), nullable=False),
        sa.Column('adapter', sa.String(length=16), nullable=False),
        sa.Column('signal_id', sa.String(length=36), nullable=True),
        sa.Column('prediction_id', sa.String(length=36), nullable=True),
        sa.Column('model_version', sa.String(length=32), nullable=True),
        sa.Column('snapshot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('as_of_ts', _TS, nullable=False),
        sa.Column('action', sa.String(length=24), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('price', sa.Float(), nullable=True),
        sa.Column('target_weight', sa.Float(), nullable=True),
        sa.Column('held_weight', sa.Float(), nullable=True),
        sa.Column('new_weight', sa.Float(), nullable=True),
        sa.Column('sizing', sa.JSON(), nullable=True),
        sa.Column('risk', sa.JSON(), nullable=True),
        sa.Column('order_id', sa.String(length=36), nullable=True),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('created_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('decision_id', name='pk_execution_decisions'),
    )
    op.create_index('ix_execution_decisions_strategy_id_symbol_created_at', 'execution_decisions',
                    ['strategy_id', 'symbol', 'created_at'])
    op.create_index('ix_execution_decisions_run_id', 'execution_decisions', ['run_id'])


def downgrade() -> None:
    op.drop_index('ix_execution_decisions_run_id', table_name='execution_decisions')
    op.drop_index('ix_execution_decisions_strategy_id_symbol_created_at', table_name='execution_decisions')
    op.drop_table('execution_decisions')
