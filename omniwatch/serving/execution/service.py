"""execution/*: fetch what a decision needs, call the trading functions, persist, answer.

The decision clock is the app's reference clock (the replay frontier, or the wall clock when
live), the same one risk/check decides at. ``execution/run`` checks every planned order of the run
with the risk guard before sending any: if one is refused the run sends nothing (HTTP 423 with the
violation codes), so a run never leaves half a rebalance behind because of a state or limit known
before it started. Each order is checked again when it is sent, against the fills of the run so
far (two orders can pass alone and breach a gross limit together): one refused then is stored
``denied``, the rest of the run is not sent, and the run answers 423 too, listing the trades
already made.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select

from omniwatch.errors import ErrorCode
from omniwatch.serving.errors import ApiError, insufficient, not_found
from omniwatch.serving.execution.schemas import DecisionView, ExecutionRunRequest, OrderCreateRequest
from omniwatch.serving.risk.service import risk_refused
from omniwatch.trading import ledger, store
from omniwatch.trading.audit import order_view
from omniwatch.trading.coinbase_live import CoinbaseLiveAdapter, CoinbaseLiveSettings, live_trading_allowed
from omniwatch.trading.execution import (
    Executor,
    Plan,
    RiskRefused,
    forecast_history,
    in_warehouse,
    order_key,
    plan_target,
    record_decision,
)
from omniwatch.trading.locks import StrategyBusy, strategy_lock
from omniwatch.trading.orders import Order, OrderRequest, VenueUnavailable
from omniwatch.trading.paper import PaperAdapter, PaperSettings, accrue_funding
from omniwatch.trading.risk import LIVE_ADAPTERS, ModelStanding, RiskDecision, RiskLimits
from omniwatch.trading.risk_store import TRADED_MODEL, RiskGuard, StrategyBook, model_standing
from omniwatch.trading.sizing import SizingRule, horizon_hours
from omniwatch.warehouse import tables
from omniwatch.warehouse.engine import get_engine, unit_of_work


@cache
def _signals_query() -> Select[Any]:
    """Signals with their prediction's version and snapshot, by id (built once: every run reads it)."""
    s, p = tables.signal_candidates, tables.predictions_v2
    return (select(s.c.signal_id, s.c.target, s.c.horizon, s.c.strategy_id, s.c.as_of_ts, s.c.prediction_id,
                   p.c.model_version, p.c.snapshot_id)
            .select_from(s.outerjoin(p, p.c.prediction_id == s.c.prediction_id))
            .where(s.c.signal_id.in_(bindparam("ids", expanding=True))))


class ExecutionErrorCode:
    LIVE_TRADING_DISABLED = "live_trading_disabled"  # 403: the live gate refused (switch, keys or scope)
    VENUE_UNAVAILABLE = "venue_unavailable"          # 503: the venue did not answer; the order stays submitted
    STRATEGY_BUSY = "strategy_busy"                  # 503: another process held the strategy's lock too long


class _Turn:
    """A strategy's place in this process's queue (weakly kept: gone when nobody waits)."""

    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


class ExecutionService:
    def __init__(self, url: str, guard: RiskGuard, clock: Callable[[], datetime], *, default_strategy: str,
                 thresholds_bps: dict[str, float], weight_band: float, max_slippage_bps: float,
                 universe: list[str], paper: PaperSettings | None = None,
                 live: CoinbaseLiveSettings | None = None, lock_timeout_s: float = 30.0):
        self.url, self.guard, self.clock, self.lock_timeout_s = url, guard, clock, lock_timeout_s
        self.default_strategy, self.thresholds_bps, self.weight_band = default_strategy, thresholds_bps, weight_band
        self.max_slippage_bps, self.universe = max_slippage_bps, universe
        self.paper_settings = paper or PaperSettings()
        self.live_settings = live or CoinbaseLiveSettings()
        self._live: CoinbaseLiveAdapter | None = None
        self.executor = Executor(url, guard, {"paper": PaperAdapter(url, self.paper_settings)})
        # One decision at a time in this process: the warehouse sees one writer from here
        # (SQLite's lock retries sleep: 16 threads fighting for it served fewer runs per second
        # than one). execution/run holds it from its signals on (``deciding``): 16 runs predicting
        # at once in threads served fewer than one at a time. Atomicity of a risk check and the
        # orders it allows (two runs of one strategy cannot both pass a limit only one of them
        # fits) is the strategy's lock in the warehouse (``deciding``), which holds across the
        # API's workers and replicas too.
        self._decide = threading.RLock()
        self._held = threading.local()  # the strategies this thread holds the warehouse lock of
        # One thread per strategy waits for its warehouse lock: the others queue here, on a lock
        # that wakes the next waiter at release. Many threads polling the (SQLite) file lock for
        # one strategy left it idle between polls and let a newcomer overtake a long waiter (p95
        # of 3 s for 16 clients of one strategy). Kept while a thread holds or waits for it.
        self._turns: weakref.WeakValueDictionary[tuple[str, str], _Turn] = weakref.WeakValueDictionary()
        self._turns_lock = threading.Lock()

    # ------------------------------------------------------------------ adapters
    def allow(self, adapter: str, scopes: frozenset[str]) -> None:
        """Live orders only with the switch on, the keys set and the caller's ``live`` scope (403)."""
        if adapter != "coinbase_live":
            return
        ok, gate = live_trading_allowed(self.live_settings, scopes)
        if not ok:
            raise ApiError(403, ExecutionErrorCode.LIVE_TRADING_DISABLED,
                           f"live trading is not allowed for this call: {gate.value}", {"gate": gate.value})
        if self._live is None:
            self._live = CoinbaseLiveAdapter(self.live_settings)
            self.executor.adapters["coinbase_live"] = self._live

    @contextmanager
    def deciding(self, track: str, strategy_id: str) -> Iterator[None]:
        """Decide for ``track``/``strategy_id``: the strategy's turn in this process, its lock in the
        warehouse (across processes and replicas, ``omniwatch.trading.locks``), then this process's
        decision lock; 503 ``strategy_busy`` past the wait limit. In that order, a request waiting
        for a strategy another request or process is deciding holds nothing that the other
        strategies need. Re-entrant in one thread for the same strategy (execution/run holds it from
        its signals on and runs inside it)."""
        held: set[tuple[str, str]] = self._held.__dict__.setdefault("keys", set())
        key = (track, strategy_id)
        if key in held:
            with self._decide:
                yield
            return
        with self._turns_lock:
            turn = self._turns.get(key)
            if turn is None:
                turn = self._turns[key] = _Turn()
        with ExitStack() as stack:
            started = time.monotonic()
            if not turn.lock.acquire(timeout=self.lock_timeout_s):
                raise ApiError(503, ExecutionErrorCode.STRATEGY_BUSY,
                               f"strategy {track}:{strategy_id} is being decided by another request of this "
                               f"process (waited {self.lock_timeout_s:g} s)",
                               {"track": track, "strategy_id": strategy_id})
            stack.callback(turn.lock.release)
            left = max(0.001, self.lock_timeout_s - (time.monotonic() - started))
            try:
                stack.enter_context(strategy_lock(self.url, track, strategy_id, left))
            except StrategyBusy as exc:
                raise ApiError(503, ExecutionErrorCode.STRATEGY_BUSY, str(exc),
                               {"track": track, "strategy_id": strategy_id}) from exc
            held.add(key)
            try:
                with self._decide:
                    yield
            finally:
                held.discard(key)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()

    def sizing_rule(self, horizon: str, limits: RiskLimits) -> SizingRule:
        """The horizon sizing with the strategy's own volatility target (its limits set)."""
        return SizingRule(horizon_hours(horizon), threshold_bps=self.thresholds_bps[horizon], band=self.weight_band,
                          target_annual_vol=limits.target_annual_vol)

    # ------------------------------------------------------------------ execution/run
    def run(self, body: ExecutionRunRequest, signals: list[dict[str, Any]], actor: str,
            skipped: list[dict[str, Any]]) -> dict[str, Any]:
        """Size, check and execute ``signals`` (signal rows with their prediction's model version,
        snapshot and as_of). Raises 423 when risk refuses an order: before any is sent (nothing
        sent), or when one is sent (the trades already made are listed)."""
        with self.deciding(body.track, body.strategy_id or self.default_strategy):
            return self._run(body, signals, actor, skipped)

    def _run(self, body: ExecutionRunRequest, signals: list[dict[str, Any]], actor: str,
             skipped: list[dict[str, Any]]) -> dict[str, Any]:
        now = self.clock()
        strategy = body.strategy_id or self.default_strategy
        run_id = str(uuid.uuid4())
        accrue_funding(self.url, body.track, strategy, now, self.paper_settings)
        limits = self.guard.limits(body.track, strategy)
        rule = self.sizing_rule(body.horizon, limits)
        prices = ledger.latest_closes(self.url, [s["target"] for s in signals], now)
        # The strategy's book, read once: the run holds its lock, so only the run's own fills
        # (added as they happen) move them; every order is decided on this book.
        book = self.guard.book(body.track, strategy, now, closes=prices)
        positions = book.positions()
        # The skill verdict of each version behind the signals, at the run's horizon: live orders
        # need it (risk's model_not_validated); paper orders are not judged by it.
        standings = ({v: model_standing(self.url, TRADED_MODEL, v, body.horizon)
                      for v in dict.fromkeys(s["model_version"] for s in signals)}
                     if body.adapter in LIVE_ADAPTERS else {})
        planned: list[tuple[dict[str, Any], Plan, str, OrderRequest | None]] = []
        held: dict[str, Order] = {}  # decision -> the order its signal placed before
        for sig in signals:
            target = sig["target"]
            if target not in prices:
                raise insufficient(ErrorCode.INSUFFICIENT_PRICES, f"no stored bar of {target} at {now.isoformat()} "
                                   "to price the order", target=target)
            history = forecast_history(self.url, target, sig["model_version"], body.horizon, sig["as_of_ts"],
                                       prefer=sig["prediction_id"])
            if sig["prediction_id"] not in {x.prediction_id for x in history}:
                # Its own forecast is gone (or failed): sizing on the others would trade without it.
                raise insufficient(ErrorCode.INSUFFICIENT_FEATURES, f"signal {sig['signal_id']} has no stored "
                                   f"{body.horizon} forecast of {target} to size from", target=target,
                                   signal_id=sig["signal_id"])
            plan = plan_target(target, body.horizon, history, sig["as_of_ts"], rule, price=prices[target],
                               capital=limits.capital_usd, n_symbols=len(self.universe),
                               held_qty=positions.get(target, ledger.Position(target)).qty,
                               max_weight=limits.max_weight_per_asset)
            decision_id = str(uuid.uuid4())
            key, existing = order_key(self.url, strategy, target, sig["signal_id"])
            if existing is not None and plan.side is not None:
                # This signal traded already: a retry answers with that order, checks nothing again.
                plan = replace(plan, side=None, qty=0.0, new_weight=plan.held_weight,
                               reason=f"the order for this signal exists already ({existing.order_id}, "
                                      f"{existing.status.value})")
            request = None if plan.side is None else OrderRequest(
                client_order_id=key, track=body.track,
                strategy_id=strategy, symbol=target, side=plan.side, qty=plan.qty, order_type="market",
                limit_price=None, time_in_force="IOC", max_slippage_bps=self.max_slippage_bps,
                signal_id=sig["signal_id"], decision_id=decision_id)
            planned.append((sig, plan, decision_id, request))
            if existing is not None and request is None:
                held[decision_id] = existing
        checks = {d: self.executor.check(r, p.price, now, adapter=body.adapter,
                                         model=standings.get(s["model_version"]), book=book)
                  for s, p, d, r in planned if r is not None}
        refused = {d: c for d, c in checks.items() if not c.allowed}
        views = []
        for sig, plan, decision_id, request in planned:
            base = self._decision_row(run_id, body, strategy, sig, plan, decision_id, actor, checks.get(decision_id))
            if request is None:
                prior = held.get(decision_id)
                views.append(self._store(base | {"action": "hold", "reason": plan.reason,
                                                 "order_id": prior.order_id if prior else None}, prior))
            elif refused:
                decision = checks[decision_id]
                if decision_id in refused:
                    order = self.executor.deny(request, body.adapter, decision, now,
                                               model_version=sig["model_version"], snapshot_id=sig["snapshot_id"])
                    views.append(self._store(base | {"action": "denied", "reason": "; ".join(decision.codes),
                                                     "order_id": order.order_id}, order))
                else:
                    views.append(self._store(base | {"action": "not_sent", "reason": "another order of the run "
                                                     "was refused by risk; nothing was sent"}, None))
            else:
                view, late = self._send(base, request, body.adapter, plan, sig, now,
                                        standings.get(sig["model_version"]), book)
                views.append(view)
                if late is not None:
                    refused[decision_id] = late
        if refused:
            first = next(iter(refused.values()))
            error = risk_refused(first)
            error.context = {**(error.context or {}), "run_id": run_id,
                             "codes": sorted({c for d in refused.values() for c in d.codes}),
                             "decisions": [v.model_dump(mode="json") for v in views]}
            raise error
        return {"run_id": run_id, "track": body.track, "strategy_id": strategy, "adapter": body.adapter,
                "horizon": body.horizon, "as_of": now, "decisions": views, "skipped": skipped}

    def _send(self, base: dict[str, Any], request: OrderRequest, adapter: str, plan: Plan, sig: dict[str, Any],
              now: datetime, model: ModelStanding | None,
              book: StrategyBook) -> tuple[DecisionView, RiskDecision | None]:
        """Send one planned order (checked again now, on the book with the run's fills so far); the
        view, and the decision if risk refused it. With a venue in the warehouse (paper), the
        order, its fills and its decision row are one transaction."""
        with unit_of_work(self.url) if in_warehouse(self.executor.adapters.get(adapter)) else nullcontext():
            return self._send_now(base, request, adapter, plan, sig, now, model, book)

    def _send_now(self, base: dict[str, Any], request: OrderRequest, adapter: str, plan: Plan, sig: dict[str, Any],
                  now: datetime, model: ModelStanding | None,
                  book: StrategyBook) -> tuple[DecisionView, RiskDecision | None]:
        try:
            order = self.executor.submit(request, adapter, plan.price, now, model_version=sig["model_version"],
                                         snapshot_id=sig["snapshot_id"], key_is_new=True, model=model,
                                         book=book)
        except RiskRefused as exc:
            row = base | {"action": "denied", "reason": "; ".join(exc.decision.codes), "order_id": exc.order.order_id,
                          "risk": exc.decision.model_dump(mode="json")}
            return self._store(row, exc.order), exc.decision
        except VenueUnavailable as exc:
            stored = store.get_order_by_client_id(self.url, request.client_order_id)
            return self._store(base | {"action": "venue_unavailable", "reason": str(exc),
                                       "order_id": stored.order_id if stored else None}, stored), None
        action = "trade" if order.request.decision_id == base["decision_id"] else "hold"
        reason = plan.reason if action == "trade" else (f"the order for this signal exists already "
                                                        f"({order.order_id}, {order.status.value})")
        return self._store(base | {"action": action, "reason": reason, "order_id": order.order_id}, order), None

    def _decision_row(self, run_id: str, body: ExecutionRunRequest, strategy: str, sig: dict[str, Any], plan: Plan,
                      decision_id: str, actor: str, risk: RiskDecision | None) -> dict[str, Any]:
        return {"decision_id": decision_id, "run_id": run_id, "track": body.track, "strategy_id": strategy,
                "symbol": plan.symbol, "horizon": body.horizon, "adapter": body.adapter,
                "signal_id": sig["signal_id"], "prediction_id": sig["prediction_id"],
                "model_version": sig["model_version"], "snapshot_id": sig["snapshot_id"], "as_of_ts": sig["as_of_ts"],
                "price": plan.price, "target_weight": plan.target_weight, "held_weight": plan.held_weight,
                "new_weight": plan.new_weight, "actor": actor,
                "sizing": {"rule": {"horizon_hours": horizon_hours(body.horizon), "band": self.weight_band,
                                    "threshold_bps": self.thresholds_bps[body.horizon]},
                           "capital_usd": plan.capital, "n_symbols": plan.n_symbols, "qty": plan.qty,
                           "side": plan.side, "forecasts": plan.forecasts},
                "risk": risk.model_dump(mode="json") if risk is not None else None}

    def _store(self, row: dict[str, Any], order: Order | None) -> DecisionView:
        from omniwatch.jsonsafe import json_safe

        record_decision(self.url, {**row, "sizing": json_safe(row["sizing"]), "risk": row["risk"]})
        risk = row.get("risk") or {}
        return DecisionView.model_validate({
            **{k: row.get(k) for k in ("decision_id", "symbol", "horizon", "action", "reason", "signal_id",
                                        "model_version", "price", "target_weight", "held_weight", "new_weight")},
            "order": order_view(order) if order is not None else None,
            "risk_codes": [v["code"] for v in risk.get("violations", [])]})

    # ------------------------------------------------------------------ signals
    def signal(self, signal_id: str) -> dict[str, Any]:
        """A stored signal with its prediction's version, snapshot and time (404 when unknown)."""
        found = self.signals([signal_id])
        if not found:
            raise not_found("signal", signal_id)
        return found[0]

    def signals(self, signal_ids: list[str]) -> list[dict[str, Any]]:
        """The stored signals of ``signal_ids`` (as :meth:`signal`), in that order; unknown ids are left out."""
        with get_engine(self.url).connect() as conn:
            rows = {r["signal_id"]: dict(r) for r in conn.execute(_signals_query(), {"ids": signal_ids}).mappings()}
        return [rows[i] for i in signal_ids if i in rows]

    # ------------------------------------------------------------------ orders
    def place(self, body: OrderCreateRequest, actor: str) -> Order:
        with self.deciding(body.track, body.strategy_id or self.default_strategy):
            return self._place(body)

    def _place(self, body: OrderCreateRequest) -> Order:
        now = self.clock()
        strategy = body.strategy_id or self.default_strategy
        price = body.limit_price or ledger.latest_closes(self.url, [body.symbol], now).get(body.symbol)
        if price is None:
            raise insufficient(ErrorCode.INSUFFICIENT_PRICES, f"no stored bar of {body.symbol} at {now.isoformat()} "
                               "to price the order", target=body.symbol)
        key = body.client_order_id or f"ow-{uuid.uuid4()}"
        request = OrderRequest(client_order_id=key, track=body.track, strategy_id=strategy, symbol=body.symbol,
                               side=body.side, qty=body.qty, order_type=body.order_type, limit_price=body.limit_price,
                               time_in_force=body.time_in_force, max_slippage_bps=body.max_slippage_bps)
        try:
            return self.executor.submit(request, body.adapter, price, now)
        except RiskRefused as exc:
            error = risk_refused(exc.decision)
            error.context = {**(error.context or {}), "order_id": exc.order.order_id}
            raise error from exc
        except VenueUnavailable as exc:
            stored = store.get_order_by_client_id(self.url, key)
            raise ApiError(503, ExecutionErrorCode.VENUE_UNAVAILABLE, f"{exc}; the order stays submitted until the "
                           "venue answers (GET execution/orders/{id} re-checks it)",
                           {"order_id": stored.order_id if stored else None}) from exc

    def order(self, order_id: str) -> Order:
        order = store.get_order(self.url, order_id)
        if order is None:
            raise not_found("order", order_id)
        return order

    def refresh(self, order_id: str) -> Order:
        request = self.order(order_id).request
        try:
            # Under the strategy's lock, like every writer of its fills (a run decides on a book it
            # read once); read again inside it: another request may have moved the order.
            with self.deciding(request.track, request.strategy_id):
                return self.executor.refresh(self.order(order_id), self.clock())
        except VenueUnavailable as exc:
            raise ApiError(503, ExecutionErrorCode.VENUE_UNAVAILABLE, str(exc), {"order_id": order_id}) from exc

    def cancel(self, order_id: str) -> Order:
        request = self.order(order_id).request
        try:
            with self.deciding(request.track, request.strategy_id):  # as refresh
                return self.executor.cancel(self.order(order_id), self.clock())
        except VenueUnavailable as exc:
            raise ApiError(503, ExecutionErrorCode.VENUE_UNAVAILABLE, str(exc), {"order_id": order_id}) from exc
