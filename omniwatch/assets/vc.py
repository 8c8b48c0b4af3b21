"""The VC track: entities and event links by resolution, point-in-time dataset, the VC model.

torch/lightgbm/mlflow/sklearn are imported inside asset bodies only (STYLE.md rule 9).
"""

import hashlib

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from omniwatch.assets.catalog import labels, mlflow_links, row_count, table_metadata
from omniwatch.checks.gate import blocking_failures
from omniwatch.errors import BlockedByDataQuality
from omniwatch.resources.event_sources import FilingsResource
from omniwatch.resources.mlflow import MLflowResource
from omniwatch.resources.warehouse import WarehouseResource

VC_MODEL_NAME = "omniwatch-vc"
EVENT_ASSETS = ("sec_filings_archive", "sec_filings", "news_events")
ALL_TIME = (pd.Timestamp("1990-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))


def _all_events(warehouse: WarehouseResource) -> pd.DataFrame:
    return warehouse.read_window("events", *ALL_TIME, time_column="available_time")


# 2: CryptoPanic's crypto-market headlines are not linked to companies (their coin names matched
# "Crypto Co", the Grayscale trusts and others: 13,246 wrong links on the bundled sample).
CODE_VERSION = "2"  # the VC assets' Dagster code_version: bump it when what they produce changes
NOT_COMPANY_NEWS = ("cryptopanic",)  # sources about coins, not companies: the liquid track's news
# The dataset and model: 2 dropped the company attributes only known from the 2025 snapshot.
DATASET_CODE_VERSION = "2"


@dg.asset(deps=["sec_filings_archive", "sec_filings"], kinds={"python", "sql"}, code_version=CODE_VERSION,
          metadata=table_metadata("entities"), **labels("vc", "checked"))
def entities(context: AssetExecutionContext, filings: FilingsResource,
             warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Companies of the VC track: CIK, ticker, legal name, its normalized form and aliases, SIC,
    state and the coverage start before which "no filing" means unknown."""
    from omniwatch.entities import build_entities

    frame = build_entities(filings.companies())
    written = warehouse.upsert("entities", frame, ["entity_id"])
    return dg.MaterializeResult(metadata={
        "entities": dg.MetadataValue.int(written),
        **row_count(written, partitioned=False),
        "with_ticker": dg.MetadataValue.int(int(frame["ticker"].notna().sum())),
        "with_coverage_start": dg.MetadataValue.int(int(frame["coverage_start"].notna().sum())),
    })


@dg.asset(deps=["entities", *EVENT_ASSETS], kinds={"python", "sql"}, code_version=CODE_VERSION,
          metadata=table_metadata("event_links"), **labels("vc", "checked"))
def event_links(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Links from every stored event to the entities it is about, with a confidence and the
    method (CIK, ticker, name, fuzzy); deterministic, so a re-run rewrites the same links."""
    from omniwatch.entities import EntityIndex, link_events

    ents = warehouse.read_table("entities")
    events = _all_events(warehouse)
    events = events[~events["source"].isin(NOT_COMPANY_NEWS)] if len(events) else events
    links = link_events(events, EntityIndex(ents))
    ids = events[["id", "source", "source_id"]].astype({"source_id": str})
    joined = links.astype({"source_id": str}).merge(ids, on=["source", "source_id"])
    rows = joined.rename(columns={"id": "event_id"})[["event_id", "entity_id", "confidence", "method"]]
    written = warehouse.upsert("event_links", rows, ["event_id", "entity_id"])
    by_method = rows.groupby("method").size().to_dict() if len(rows) else {}
    return dg.MaterializeResult(metadata={
        "links": dg.MetadataValue.int(written),
        **row_count(written, partitioned=False),
        "events": dg.MetadataValue.int(len(events)),
        "linked_events": dg.MetadataValue.int(int(rows["event_id"].nunique()) if len(rows) else 0),
        "by_method": dg.MetadataValue.json({k: int(v) for k, v in by_method.items()}),
    })


@dg.asset(deps=["event_links"], kinds={"python"}, code_version=DATASET_CODE_VERSION, **labels("vc", "training"))
def vc_dataset(context: AssetExecutionContext, warehouse: WarehouseResource, filings: FilingsResource) -> dg.Output:
    """Per entity and month: point-in-time Form D history features, news mentions and tone,
    offering amounts where known, and the label (a new Form D within 180 days); refused with
    ``blocked_by_data_quality`` if a blocking events check failed on an input partition."""
    from omniwatch.vc.features import build_vc_frame, filings_from_events, linked_news

    events = _all_events(warehouse)
    if events.empty:
        raise dg.Failure(description="insufficient_features: no events stored",
                         metadata={"error_code": "insufficient_features"})
    start, end = events["available_time"].min(), events["available_time"].max() + pd.Timedelta(seconds=1)
    audit = warehouse.read_audit(EVENT_ASSETS, start, end)
    failures = blocking_failures(audit, EVENT_ASSETS, start, end)
    if failures:
        raise dg.Failure(description=str(BlockedByDataQuality(failures)),
                         metadata={"error_code": "blocked_by_data_quality",
                                   "failed_checks": dg.MetadataValue.json(failures)})
    filings_frame = filings_from_events(events[events["source"] == "edgar"])
    # Only cik and coverage_start: the entities' other attributes are today's (see omniwatch.vc.features).
    ents = warehouse.read_table("entities")
    links = warehouse.read_table("event_links").merge(
        events[["id", "source", "source_id"]].rename(columns={"id": "event_id"}), on="event_id")
    news = linked_news(events[events["source"] != "edgar"], links)
    frame = build_vc_frame(filings_frame, ents, offerings=filings.offering_amounts(), news=news,
                           data_end=filings_frame["available_time"].max())
    lineage = hashlib.sha256("|".join(sorted(filings_frame["accession_number"])).encode()).hexdigest()[:24]
    frame.attrs["train_lineage_id"] = lineage
    frame.attrs["dq_summary"] = {"window": [start.isoformat(), end.isoformat()], "audit_rows": len(audit),
                                 "blocking_failures": []}
    stored = _store_latest_snapshots(warehouse, frame, lineage)
    labelled = frame["label"].notna()
    return dg.Output(frame, metadata={
        "snapshots_stored": dg.MetadataValue.int(stored),
        "rows": dg.MetadataValue.int(len(frame)),
        **row_count(len(frame), partitioned=False),
        "entities": dg.MetadataValue.int(int(frame["entity_id"].nunique())),
        "filings": dg.MetadataValue.int(len(filings_frame)),
        "labelled_rows": dg.MetadataValue.int(int(labelled.sum())),
        "base_rate": dg.MetadataValue.float(round(float(frame.loc[labelled, "label"].mean()), 4)),
        "train_lineage_id": dg.MetadataValue.text(lineage),
    })


def _store_latest_snapshots(warehouse: WarehouseResource, frame: pd.DataFrame, lineage: str) -> int:
    """Each entity's newest month as a ``feature_snapshots`` row (track ``vc``): what the API's
    predict/vc reads. The full history stays in the dataset; these rows are the serving view."""
    import numpy as np

    from omniwatch.vc.features import FEATURES

    latest = frame.sort_values("as_of").groupby("entity_id").tail(1)
    rows = []
    for rec in latest.to_dict("records"):
        values = {f: (None if pd.isna(rec[f]) else float(rec[f])) for f in FEATURES}
        rows.append({
            "track": "vc", "target": rec["entity_id"], "as_of_ts": pd.Timestamp(rec["as_of"]).to_pydatetime(),
            "event_time": pd.Timestamp(rec["as_of"]).to_pydatetime(), "data_version": lineage,
            "lineage_id": lineage, "features": values,
            "feature_mask": {f: v is not None for f, v in values.items()},
            "labels": {"label": None if pd.isna(rec["label"]) else float(np.float64(rec["label"]))},
        })
    return warehouse.upsert_rows("feature_snapshots", rows, ["track", "target", "as_of_ts", "data_version"])


@dg.asset(kinds={"python", "lightgbm", "mlflow"}, code_version=DATASET_CODE_VERSION, **labels("vc", "model"))
def vc_model(context: AssetExecutionContext, vc_dataset: pd.DataFrame, mlflow: MLflowResource,
             warehouse: WarehouseResource) -> dg.MaterializeResult:
    """LightGBM: will the company file a new Form D within 180 days? Time-ordered purged
    validation and a yearly walk-forward, metrics beside the base rate; registered as a new
    version of ``omniwatch-vc`` (alias challenger; the first version also champion)."""
    import hashlib

    from mlflow.models import infer_signature

    import mlflow as mlflow_lib
    from omniwatch.ml.reporting import log_params_in_full
    from omniwatch.registry import FINGERPRINT_TAG, record_registration, version_with_fingerprint
    from omniwatch.vc.model import VCConfig, fit_vc_model, vc_figures

    config = VCConfig()
    lineage = vc_dataset.attrs.get("train_lineage_id", "")
    # Skip a retraining that would reproduce a registered version: same code, config and rows.
    fingerprint = hashlib.sha256("|".join([DATASET_CODE_VERSION, config.config_hash(), lineage,
                                           str(len(vc_dataset))]).encode()).hexdigest()[:32]
    existing = version_with_fingerprint(mlflow, VC_MODEL_NAME, fingerprint)
    if existing is not None:
        reason = (f"training skipped: {VC_MODEL_NAME} version {existing} was trained with the same code version, "
                  f"config and dataset (fingerprint {fingerprint})")
        context.log.info(reason)
        return dg.MaterializeResult(metadata={
            "skipped": dg.MetadataValue.text(reason), "registered_model": dg.MetadataValue.text(VC_MODEL_NAME),
            "registered_version": dg.MetadataValue.text(existing),
            **mlflow_links(mlflow, model=(VC_MODEL_NAME, existing)),
            "training_fingerprint": dg.MetadataValue.text(fingerprint)})
    result = fit_vc_model(vc_dataset, config)
    metrics = {k: float(v) for k, v in result.metrics.items() if pd.notna(v)}
    table = pd.DataFrame([
        {"metric": "ROC AUC", "model": metrics.get("roc_auc"), "recency rule": metrics.get("recency_roc_auc"),
         "no skill": 0.5},
        {"metric": "PR AUC", "model": metrics.get("pr_auc"), "recency rule": metrics.get("recency_pr_auc"),
         "no skill": metrics.get("base_rate")},
        {"metric": "precision@1%", "model": metrics.get("precision_at_1pct"), "no skill": metrics.get("base_rate")},
        {"metric": "precision@5%", "model": metrics.get("precision_at_5pct"), "no skill": metrics.get("base_rate")},
        {"metric": "precision@100", "model": metrics.get("precision_at_100"), "no skill": metrics.get("base_rate")},
        {"metric": "Brier", "model": metrics.get("brier"), "no skill": metrics.get("brier_train_rate")},
    ])
    sample = vc_dataset[result.features].head(200).astype(float)
    tags = {"omniwatch.model": "vc_model", "dagster_run_id": context.run_id,
            "train_lineage_id": lineage, "data_version": lineage}
    with mlflow.run_context("vc_model", experiment="omniwatch-vc", tags=tags,
                            start_time_ms=result.started_ms) as run:
        run_id = run.info.run_id
        # Values over 500 characters are cut in the params table and kept whole in params.json.
        log_params_in_full({"config_hash": config.config_hash(), **config.model_dump(mode="json")})
        mlflow_lib.log_text(config.to_json(), "config/vc_config.json")
        mlflow_lib.log_metrics(metrics)
        mlflow_lib.log_dict(vc_dataset.attrs.get("dq_summary", {}), "data_quality/summary.json")
        mlflow_lib.log_text(table.to_markdown(index=False, floatfmt=".4f"), "validation/metrics.md")
        mlflow_lib.log_text(result.calibration.to_markdown(index=False, floatfmt=".4f"), "validation/calibration.md")
        mlflow_lib.log_text(result.walk_forward.to_markdown(index=False, floatfmt=".4f"), "walk_forward/table.md")
        for name, fig in vc_figures(result).items():  # ROC, precision-recall, calibration
            mlflow_lib.log_figure(fig, f"plots/{name}.png")
        info = mlflow_lib.lightgbm.log_model(
            result.booster, name="model", input_example=sample.head(5),
            signature=infer_signature(sample, result.booster.predict(sample.to_numpy(), num_threads=1)))
    version, aliases = record_registration(
        mlflow, warehouse.database_url, VC_MODEL_NAME, info.model_uri, run_id=run_id, track="vc",
        train_lineage_id=lineage, data_version=lineage, metrics=metrics, actor=f"dagster:{context.run_id}",
        registration_key=fingerprint)  # a retry completes this version (see the liquid ensemble)
    mlflow.set_version_tags(VC_MODEL_NAME, version, {FINGERPRINT_TAG: fingerprint})
    return dg.MaterializeResult(metadata={
        "validation": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4f")),
        "calibration": dg.MetadataValue.md(result.calibration.to_markdown(index=False, floatfmt=".4f")),
        "walk_forward": dg.MetadataValue.md(result.walk_forward.to_markdown(index=False, floatfmt=".4f")),
        "registered_model": dg.MetadataValue.text(VC_MODEL_NAME),
        "registered_version": dg.MetadataValue.text(version),
        "aliases": dg.MetadataValue.json(aliases),
        "mlflow_run_id": dg.MetadataValue.text(run_id),
        **mlflow_links(mlflow, run_id, (VC_MODEL_NAME, version)),
    })

