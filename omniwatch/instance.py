"""The Dagster instance the CLI uses: the same one ``make ui`` shows.

The embedded instance lives in ``$OMNIWATCH_HOME/dagster``: that folder is its ``DAGSTER_HOME``,
holding a copy of the package's ``omniwatch/dagster.yaml`` (storage, compute logs and artifacts
under ``OMNIWATCH_DAGSTER_DIR`` = the same folder), so neither the CLI nor ``dagster dev`` writes
into the checkout. A ``DAGSTER_HOME`` set elsewhere with its own ``dagster.yaml`` (production:
``deploy/``) is used as it is.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from dagster import DagsterInstance

from omniwatch.settings import Settings


def _template() -> str:
    return resources.files("omniwatch").joinpath("dagster.yaml").read_text()


def embedded_dagster_home(settings: Settings) -> Path:
    """``$OMNIWATCH_HOME/dagster`` with the embedded instance's ``dagster.yaml`` (rewritten when
    the package's copy changed)."""
    home = settings.dagster_dir.resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.is_file() or target.read_text() != _template():
        target.write_text(_template())
    return home


def dagster_instance(settings: Settings) -> DagsterInstance:
    """The instance of ``DAGSTER_HOME`` when it names one of its own (production's
    ``dagster.yaml``, or Dagster's defaults when the folder has none), else the embedded instance
    of ``settings``' home, and ``DAGSTER_HOME`` then names it (for code that asks Dagster for the
    current instance). A ``DAGSTER_HOME`` holding the embedded ``dagster.yaml`` is an embedded
    home (perhaps of another ``OMNIWATCH_HOME``): ``settings``' own is used."""
    configured = os.environ.get("DAGSTER_HOME")
    config = Path(configured, "dagster.yaml") if configured else None
    if config is not None and not (config.is_file() and config.read_text() == _template()):
        return DagsterInstance.from_config(str(configured))
    home = embedded_dagster_home(settings)
    os.environ["OMNIWATCH_DAGSTER_DIR"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.from_config(str(home))
