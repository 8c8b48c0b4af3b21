"""predictions_v2 (target, model_name, model_version, as_of_ts) index: execution/run's sizing read

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:20:00

``execution/run`` sizes each target from the forecasts that the signal's model version made over
the last H hours (``omniwatch.trading.execution.forecast_history``). The table's indexes lead with
``track`` or with the model alone, so SQLite searched every prediction the version had ever made
and filtered target and hours after: a read that grows with the version's age and with every
prediction request (each stores a row). With this index it is a range scan of the H hours.
"""

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_predictions_v2_target_model_name_model_version_as_of_ts', 'predictions_v2',
                    ['target', 'model_name', 'model_version', 'as_of_ts'])


def downgrade() -> None:
    op.drop_index('ix_predictions_v2_target_model_name_model_version_as_of_ts', table_name='predictions_v2')
