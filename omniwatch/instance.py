"""The Dagster instance the CLI uses: the same one ``make ui`` shows.

``DAGSTER_HOME`` is the repository root (its ``dagster.yaml`` keeps storage under
``$OMNIWATCH_HOME/dagster`` via ``OMNIWATCH_DAGSTER_DIR``). Run from elsewhere without
``DAGSTER_HOME``, a plain SQLite instance under ``$OMNIWATCH_HOME/dagster`` is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance

from omniwatch.settings import Settings


def dagster_instance(settings: Settings) -> DagsterInstance:
    os.environ.setdefault("OMNIWATCH_DAGSTER_DIR", str(settings.dagster_dir))
    settings.dagster_dir.mkdir(parents=True, exist_ok=True)
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return DagsterInstance.from_config(home)
    if Path("dagster.yaml").is_file():
        os.environ["DAGSTER_HOME"] = str(Path.cwd())
        return DagsterInstance.from_config(str(Path.cwd()))
    return DagsterInstance.local_temp(str(settings.dagster_dir))
