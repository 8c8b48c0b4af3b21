"""predictions_v2 forecast-hours index: the sizing read stays the same size however often an hour is scored

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 22:50:00

Every prediction request stores a row, so a busy hour holds thousands of predictions of one target
and version. ``execution/run`` sizes from one per hour (the newest, or the signal's own), and
``omniwatch.trading.execution.forecast_history`` ranked every row of the last H hours to find
them: a run's cost grew with the number of predictions served (13 -> 24 ms per run over 1,500
runs of the bench). This index (partial: only the forecasts sizing may read, no failed scoring,
no client features) holds every column the newest-per-hour search reads (``snapshot_id`` and
``error`` too, so that SQLite's planner finds it covering), so it is answered from the index (a
grouped scan, no sort, no table rows) and only the H winners are read. It replaces
0014's narrower index, which only that read used.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

WHERE = sa.text("error IS NULL AND snapshot_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_predictions_v2_target_model_name_model_version_as_of_ts', table_name='predictions_v2')
    op.create_index('ix_predictions_v2_forecast_hours', 'predictions_v2',
                    ['target', 'model_name', 'model_version', 'as_of_ts', 'created_at', 'prediction_id',
                     'snapshot_id', 'error'],
                    sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index('ix_predictions_v2_forecast_hours', table_name='predictions_v2')
    op.create_index('ix_predictions_v2_target_model_name_model_version_as_of_ts', 'predictions_v2',
                    ['target', 'model_name', 'model_version', 'as_of_ts'])
