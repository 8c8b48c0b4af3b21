"""serving_tasks.executor: the two executors that remain (webserver | in_process)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:05:00

Tasks used to name three launchers: ``local`` (a thread in the API process), ``dagster`` submitted
to the webserver, or ``dagster`` executed in the API process (``in_process`` true). The local
thread is gone; a stored row keeps meaning what it did: run in the API process -> ``in_process``,
submitted to the webserver -> ``webserver``. Downgrade maps them back (``in_process`` rows become
``dagster`` with ``in_process`` true, which the old code read the same way).
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE serving_tasks SET executor = CASE WHEN in_process THEN 'in_process' "
                       "ELSE 'webserver' END WHERE executor IN ('local', 'dagster')"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE serving_tasks SET executor = 'dagster' WHERE executor IN ('in_process', 'webserver')"))
