"""data-quality review loop: samples drawn for people to judge, their rows, and the verdicts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:30:00

``data_quality_samples`` is one draw (table, who drew it, seed, filters, how many rows matched);
``data_quality_sample_rows`` the row keys it holds with their event's source;
``data_quality_reviews`` the verdicts, append only, one revision per change of a reviewer's mind.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'data_quality_samples',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('sample_table', sa.String(length=32), nullable=False),
        sa.Column('drawn_by', sa.String(length=128), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('filters', sa.JSON(), nullable=False),
        sa.Column('population', sa.Integer(), nullable=False),
        sa.Column('drawn_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_data_quality_samples'),
    )
    op.create_index('ix_data_quality_samples_sample_table_drawn_at', 'data_quality_samples',
                    ['sample_table', 'drawn_at'])
    op.create_table(
        'data_quality_sample_rows',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('sample_id', _ID, nullable=False),
        sa.Column('row_key', _ID, nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['sample_id'], ['data_quality_samples.id'], ondelete='CASCADE',
                                name='fk_data_quality_sample_rows_sample_id_data_quality_samples'),
        sa.PrimaryKeyConstraint('id', name='pk_data_quality_sample_rows'),
        sa.UniqueConstraint('sample_id', 'row_key', name='uq_data_quality_sample_rows_sample_id_row_key'),
    )
    op.create_table(
        'data_quality_reviews',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('sample_id', _ID, nullable=False),
        sa.Column('row_key', _ID, nullable=False),
        sa.Column('reviewer', sa.String(length=128), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('verdict', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(['sample_id', 'row_key'],
                                ['data_quality_sample_rows.sample_id', 'data_quality_sample_rows.row_key'],
                                name='fk_data_quality_reviews_sample_id_data_quality_sample_rows'),
        sa.PrimaryKeyConstraint('id', name='pk_data_quality_reviews'),
        sa.UniqueConstraint('sample_id', 'row_key', 'reviewer', 'revision',
                            name='uq_data_quality_reviews_sample_id_row_key_reviewer_revision'),
    )


def downgrade() -> None:
    op.drop_table('data_quality_reviews')
    op.drop_table('data_quality_sample_rows')
    op.drop_index('ix_data_quality_samples_sample_table_drawn_at', table_name='data_quality_samples')
    op.drop_table('data_quality_samples')
