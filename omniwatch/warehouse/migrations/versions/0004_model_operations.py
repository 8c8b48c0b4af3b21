"""model operations: audit columns on model_promotions, live scoring columns on predictions_v2

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 20:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('predictions_v2') as batch:
        batch.add_column(sa.Column('role', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch.add_column(sa.Column('realised', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('matured_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('model_promotions') as batch:
        batch.add_column(sa.Column('model_version', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('outcome', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('source', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('window', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('thresholds', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('metrics', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_promotions') as batch:
        for name in ('metrics', 'thresholds', 'window', 'source', 'outcome', 'model_version'):
            batch.drop_column(name)
    with op.batch_alter_table('predictions_v2') as batch:
        for name in ('matured_at', 'realised', 'error', 'role'):
            batch.drop_column(name)
