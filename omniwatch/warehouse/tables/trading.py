"""Trading: signals, orders and their fills, funding, positions, risk, execution decisions."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from omniwatch.warehouse.tables._base import UTC, Id, _id, metadata

# ----------------------------------------------------------------------------- trading
signal_candidates = Table(
    "signal_candidates", metadata,
    Column("signal_id", String(36), primary_key=True),
    Column("prediction_id", String(36), ForeignKey("predictions_v2.prediction_id")),
    Column("track", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("horizon", String(8), nullable=False),
    Column("direction", Integer, nullable=False),
    Column("strength", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("strategy_id", "target", "horizon", "as_of_ts"),
    Index(None, "created_at"),  # /stream/signals reads new rows by it (migration 0013)
)

orders_sim = Table(
    "orders_sim", metadata,
    Column("order_id", String(36), primary_key=True),
    Column("client_order_id", String(64), nullable=False),
    Column("signal_id", String(36), ForeignKey("signal_candidates.signal_id")),
    Column("decision_id", String(36)),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("limit_price", Float),
    Column("order_type", String(16), nullable=False),
    # Migration 0009: the seed's ``mode String(8)`` (it could not hold ``coinbase_live``) became
    # ``adapter`` (paper | coinbase_live); ``venue`` is where it executes (paper | coinbase).
    Column("adapter", String(16), nullable=False),
    Column("venue", String(16), nullable=False),
    Column("venue_order_id", String(64)),
    Column("time_in_force", String(8), nullable=False),
    Column("max_slippage_bps", Float),
    Column("reference_price", Float),                  # the price slippage is measured against
    Column("status", String(16), nullable=False),
    Column("filled_qty", Float, nullable=False, default=0.0),
    Column("avg_fill_price", Float),
    Column("fee", Float, nullable=False, default=0.0),
    Column("lifecycle", JSON, nullable=False),         # [{ts, from, to, reason}], append only
    Column("model_version", String(32)),
    Column("snapshot_id", Id, ForeignKey("feature_snapshots.id", ondelete="SET NULL")),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Column("updated_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("client_order_id"),
    Index(None, "strategy_id", "created_at"),
    Index(None, "venue", "venue_order_id"),
)

# One row per execution; idempotent by (order_id, venue_fill_id). ``slippage_bps`` is signed,
# adverse positive, against the order's reference price.
fills = Table(
    "fills", metadata,
    Column("fill_id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders_sim.order_id", ondelete="CASCADE"), nullable=False),
    Column("venue_fill_id", String(64), nullable=False),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("slippage_bps", Float),
    Column("ts", UTC, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("order_id", "venue_fill_id"),
    Index(None, "track", "strategy_id", "ts"),
)

# Funding charged to (positive) or received by (negative) an open perpetual position, one row per
# funding time, so an accrual re-run never charges twice.
funding_payments = Table(
    "funding_payments", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("funding_time", UTC, nullable=False),
    Column("venue", String(32), nullable=False),
    Column("funding_rate", Float, nullable=False),
    Column("mark_price", Float, nullable=False),
    Column("position_qty", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("track", "strategy_id", "symbol", "funding_time"),
)

# The paper venue's own book of orders (what an exchange would hold): the request and when it
# arrived, so ``get`` replays it deterministically over the data stored since, in any process.
paper_orders = Table(
    "paper_orders", metadata,
    Column("venue_order_id", String(64), primary_key=True),
    Column("client_order_id", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("submitted_at", UTC, nullable=False),
    Column("canceled_at", UTC),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    UniqueConstraint("client_order_id"),
)

positions_snapshots = Table(
    "positions_snapshots", metadata, _id(),
    Column("strategy_id", String(64), nullable=False),
    Column("track", String(8), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("as_of_ts", UTC, nullable=False),
    Column("qty", Float, nullable=False),
    Column("avg_price", Float),
    Column("mark_price", Float),
    Column("unrealized_pnl", Float, nullable=False, default=0.0),
    Column("realized_pnl", Float, nullable=False, default=0.0),
    # Cumulative costs for attribution (migration 0009); slippage is already in the fill prices.
    Column("fees", Float, nullable=False, server_default="0"),
    Column("funding", Float, nullable=False, server_default="0"),
    Column("slippage_cost", Float, nullable=False, server_default="0"),
    Column("reason", String(16)),                     # fill | funding | mark
    UniqueConstraint("track", "strategy_id", "symbol", "as_of_ts"),
)

risk_events = Table(
    "risk_events", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("code", String(128), nullable=False),
    Column("detail", JSON),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "strategy_id", "created_at"),
)

# The risk controls' audit, append only: every kill-switch trigger and reset, every daily-loss
# trip and every keyed consecutive-loss reset; the state of a control is its latest row.
# ``strategy_id`` ``*`` is a track-wide switch; ``as_of`` is the decision clock (the replay
# frontier in replay), ``created_at`` the wall clock of the write.
risk_controls = Table(
    "risk_controls", metadata, _id(),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("control", String(32), nullable=False),   # kill_switch | daily_loss | consecutive_loss
    Column("action", String(16), nullable=False),    # trigger | reset | trip
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", JSON),
    Column("as_of", UTC, nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "track", "strategy_id", "control", "as_of"),
)

# What execution/run decided per target (migration 0011): the signal, the sizing, the risk
# decision, the action and the order; execution/audit/{decision_id} starts here. Append only.
execution_decisions = Table(
    "execution_decisions", metadata,
    Column("decision_id", String(36), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("track", String(8), nullable=False),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("horizon", String(8), nullable=False),
    Column("adapter", String(16), nullable=False),
    Column("signal_id", String(36)),
    Column("prediction_id", String(36)),
    Column("model_version", String(32)),
    Column("snapshot_id", Id),
    Column("as_of_ts", UTC, nullable=False),
    Column("action", String(24), nullable=False),   # trade | hold | denied | not_sent | venue_unavailable
    Column("reason", Text, nullable=False),
    Column("price", Float),
    Column("target_weight", Float),
    Column("held_weight", Float),
    Column("new_weight", Float),
    Column("sizing", JSON),
    Column("risk", JSON),
    Column("order_id", String(36)),
    Column("actor", String(128), nullable=False),
    Column("created_at", UTC, nullable=False, server_default=func.now()),
    Index(None, "strategy_id", "symbol", "created_at"),
    Index(None, "run_id"),
)
