"""pipeline alerts: one row per failed Dagster run (run-failure sensor)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pipeline_alerts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('job_name', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('failed_steps', sa.JSON(), nullable=True),
        sa.Column('partition', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_pipeline_alerts'),
        sa.UniqueConstraint('run_id', name='uq_pipeline_alerts_run_id'),
    )
    op.create_index('ix_pipeline_alerts_job_name_created_at', 'pipeline_alerts', ['job_name', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_pipeline_alerts_job_name_created_at', table_name='pipeline_alerts')
    op.drop_table('pipeline_alerts')
