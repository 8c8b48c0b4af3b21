"""execution: order lifecycle on orders_sim, fills, funding payments, the paper venue's orders

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:30:00

``orders_sim.mode String(8)`` could not hold ``coinbase_live``; it is replaced by ``adapter
String(16)`` rather than widened, so one column names the adapter instead of two that could
disagree. The rename keeps every stored value (the seed wrote ``paper``), and the data migration
fills the new non-null columns of existing rows: ``venue`` from the adapter (``coinbase_live`` ->
``coinbase``, anything else -> ``paper``), ``time_in_force`` ``GTC`` (what an order without one
behaved as) and an empty ``lifecycle``. Downgrade renames back and shortens ``coinbase_live`` to
``live`` so it fits ``String(8)``.

New tables: ``fills`` (one row per execution, unique by order and venue fill id),
``funding_payments`` (one per position and funding time, so an accrual re-run charges nothing
twice) and ``paper_orders`` (the paper venue's own record of what it was sent, so its resting
orders are replayed the same way by any process). ``positions_snapshots`` gains cumulative
``fees``, ``funding`` and ``slippage_cost`` and the ``reason`` of each snapshot, and its natural
key gains ``track`` (a strategy id is only unique within a track).
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('orders_sim') as batch:
        batch.alter_column('mode', new_column_name='adapter', existing_type=sa.String(length=8),
                           type_=sa.String(length=16), existing_nullable=False)
        batch.add_column(sa.Column('venue', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('venue_order_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('time_in_force', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('max_slippage_bps', sa.Float(), nullable=True))
        batch.add_column(sa.Column('reference_price', sa.Float(), nullable=True))
        batch.add_column(sa.Column('lifecycle', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('model_version', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('snapshot_id', _ID, nullable=True))
    op.execute(sa.text("UPDATE orders_sim SET venue = CASE WHEN adapter = 'coinbase_live' THEN 'coinbase' "
                       "ELSE 'paper' END, time_in_force = 'GTC', lifecycle = '[]'"))
    with op.batch_alter_table('orders_sim') as batch:
        batch.alter_column('venue', existing_type=sa.String(length=16), nullable=False)
        batch.alter_column('time_in_force', existing_type=sa.String(length=8), nullable=False)
        batch.alter_column('lifecycle', existing_type=sa.JSON(), nullable=False)
        batch.create_foreign_key('fk_orders_sim_snapshot_id_feature_snapshots', 'feature_snapshots',
                                 ['snapshot_id'], ['id'], ondelete='SET NULL')
        batch.create_index('ix_orders_sim_venue_venue_order_id', ['venue', 'venue_order_id'])

    op.create_table(
        'fills',
        sa.Column('fill_id', sa.String(length=36), nullable=False),
        sa.Column('order_id', sa.String(length=36), nullable=False),
        sa.Column('venue_fill_id', sa.String(length=64), nullable=False),
        sa.Column('track', sa.String(length=8), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=16), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=False),
        sa.Column('qty', sa.Float(), nullable=False),
        sa.Column('price', sa.Float(), nullable=False),
        sa.Column('fee', sa.Float(), nullable=False),
        sa.Column('liquidity', sa.String(length=8), nullable=False),
        sa.Column('slippage_bps', sa.Float(), nullable=True),
        sa.Column('ts', _TS, nullable=False),
        sa.Column('created_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders_sim.order_id'], ondelete='CASCADE',
                                name='fk_fills_order_id_orders_sim'),
        sa.PrimaryKeyConstraint('fill_id', name='pk_fills'),
        sa.UniqueConstraint('order_id', 'venue_fill_id', name='uq_fills_order_id_venue_fill_id'),
    )
    op.create_index('ix_fills_track_strategy_id_ts', 'fills', ['track', 'strategy_id', 'ts'])

    op.create_table(
        'funding_payments',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('track', sa.String(length=8), nullable=False),
        sa.Column('strategy_id', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=16), nullable=False),
        sa.Column('funding_time', _TS, nullable=False),
        sa.Column('venue', sa.String(length=32), nullable=False),
        sa.Column('funding_rate', sa.Float(), nullable=False),
        sa.Column('mark_price', sa.Float(), nullable=False),
        sa.Column('position_qty', sa.Float(), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.Column('created_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_funding_payments'),
        sa.UniqueConstraint('track', 'strategy_id', 'symbol', 'funding_time',
                            name='uq_funding_payments_track_strategy_id_symbol_funding_time'),
    )

    op.create_table(
        'paper_orders',
        sa.Column('venue_order_id', sa.String(length=64), nullable=False),
        sa.Column('client_order_id', sa.String(length=64), nullable=False),
        sa.Column('request', sa.JSON(), nullable=False),
        sa.Column('submitted_at', _TS, nullable=False),
        sa.Column('canceled_at', _TS, nullable=True),
        sa.Column('created_at', _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('venue_order_id', name='pk_paper_orders'),
        sa.UniqueConstraint('client_order_id', name='uq_paper_orders_client_order_id'),
    )

    with op.batch_alter_table('positions_snapshots') as batch:
        batch.add_column(sa.Column('fees', sa.Float(), server_default='0', nullable=False))
        batch.add_column(sa.Column('funding', sa.Float(), server_default='0', nullable=False))
        batch.add_column(sa.Column('slippage_cost', sa.Float(), server_default='0', nullable=False))
        batch.add_column(sa.Column('reason', sa.String(length=16), nullable=True))
        batch.drop_constraint('uq_positions_snapshots_strategy_id_symbol_as_of_ts', type_='unique')
        batch.create_unique_constraint('uq_positions_snapshots_track_strategy_id_symbol_as_of_ts',
                                       ['track', 'strategy_id', 'symbol', 'as_of_ts'])


def downgrade() -> None:
    with op.batch_alter_table('positions_snapshots') as batch:
        batch.drop_constraint('uq_positions_snapshots_track_strategy_id_symbol_as_of_ts', type_='unique')
        batch.create_unique_constraint('uq_positions_snapshots_strategy_id_symbol_as_of_ts',
                                       ['strategy_id', 'symbol', 'as_of_ts'])
        batch.drop_column('reason')
        batch.drop_column('slippage_cost')
        batch.drop_column('funding')
        batch.drop_column('fees')
    op.drop_table('paper_orders')
    op.drop_table('funding_payments')
    op.drop_index('ix_fills_track_strategy_id_ts', table_name='fills')
    op.drop_table('fills')
    op.execute(sa.text("UPDATE orders_sim SET adapter = 'live' WHERE adapter = 'coinbase_live'"))
    with op.batch_alter_table('orders_sim') as batch:
        batch.drop_index('ix_orders_sim_venue_venue_order_id')
        batch.drop_constraint('fk_orders_sim_snapshot_id_feature_snapshots', type_='foreignkey')
        for column in ('snapshot_id', 'model_version', 'lifecycle', 'reference_price', 'max_slippage_bps',
                       'time_in_force', 'venue_order_id', 'venue'):
            batch.drop_column(column)
        batch.alter_column('adapter', new_column_name='mode', existing_type=sa.String(length=16),
                           type_=sa.String(length=8), existing_nullable=False)
