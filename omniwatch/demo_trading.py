"""The demo's paper-trading stage: ``execution/run`` over real HTTP, and one audit chain.

After the live segment the champion (and the versions scored beside it) has a forecast for every
replayed hour. The stage trades the 1 h forecast (one tranche: the 24 h sizing averages a day of
forecasts whose signs flip on this sample, and its target stays inside the no-trade band). The stage starts the API
app in process (``fastapi.testclient``: the real routes, validation and middleware, no port),
with a one-off key named ``demo``, sends ``POST /api/v2/execution/run`` in paper mode, and prints
each target's decision and the audit chain of the first trade: signal -> order (lifecycle) ->
fills -> position -> PnL. A rerun of the demo answers ``hold`` (the signals' orders exist).

The demo trades every forecast's sign (signal thresholds 0): on this sample no model's forecasts
clear the production thresholds (10/20/50 bps; MODEL-NOTES), and a demo that always holds would
show no chain. Sizing, the band, the limits and the paper adapter's costs are the defaults.
"""

from __future__ import annotations

import secrets
from typing import Any

from omniwatch.settings import Settings

HORIZON = "1h"


def run_paper_execution(settings: Settings) -> tuple[str, bool]:
    """(the stage's report, whether every answer was a success)."""
    from fastapi.testclient import TestClient

    from omniwatch.serving.app import create_app
    from omniwatch.serving.settings import ServingSettings

    key = secrets.token_hex(16)
    serving = ServingSettings(api_keys=[f"demo:{key}"], signal_threshold_bps_1h=0.0, signal_threshold_bps_4h=0.0,
                              signal_threshold_bps_24h=0.0)
    headers = {"X-API-Key": key}
    with TestClient(create_app(settings, serving)) as client:
        r = client.post("/api/v2/execution/run", json={"horizon": HORIZON, "adapter": "paper"}, headers=headers)
        if r.status_code != 200:
            return f"paper execution: execution/run answered {r.status_code}: {r.text[:400]}", False
        run = r.json()
        lines = [f"paper execution: execution/run ({HORIZON}, paper) at {run['as_of']}, run {run['run_id']} "
                 "(demo signal thresholds 0: every forecast's sign trades)"]
        for d in run["decisions"]:
            order = d["order"] or {}
            lines.append(f"  {d['symbol']:<4} {d['action']:<8} v{d['model_version']}  target {d['target_weight']:+.4f}"
                         f"  held {d['held_weight']:+.4f} -> {d['new_weight']:+.4f}"
                         + (f"  order {order['side']} {order['filled_qty']:.6f} @ {order['avg_fill_price'] or 0:.2f}"
                            f" {order['status']}" if order else f"  ({d['reason'][:80]})"))
        traded = [d for d in run["decisions"] if d["action"] == "trade"]
        if traded:
            chain = client.get(f"/api/v2/execution/audit/{traded[0]['decision_id']}").json()
            lines += ["", *audit_lines(chain)]
        attribution = client.get("/api/v2/metrics/pnl-attribution", params={"track": "liquid"}).json()
        total = attribution["total"]
        lines.append(f"executed PnL now (USD): net {total['net']:+.2f} = gross {total['gross']:+.2f} - slippage "
                     f"{total['slippage']:.2f} - fees {total['fees']:.2f} - funding {total['funding']:+.2f}")
    return "\n".join(lines), True


def audit_lines(chain: dict[str, Any]) -> list[str]:
    """The chain as the demo prints it (and the README shows)."""
    decision, order, pnl = chain["decision"], chain["order"] or {}, chain["pnl"] or {}
    snapshot = chain["feature_snapshot"] or {}
    signal = chain["signal"] or {}
    lines = [f"audit chain of decision {decision['decision_id']} (GET /api/v2/execution/audit/<id>):",
             f"  signal    {signal.get('signal_id')}  {signal.get('target')} {signal.get('horizon')} direction "
             f"{signal.get('direction')} as of {signal.get('as_of_ts')}",
             f"  model     {chain['model']['name']} v{chain['model']['version']}, prediction "
             f"{(chain['prediction'] or {}).get('prediction_id')}, snapshot {snapshot.get('id')} "
             f"(lineage {snapshot.get('lineage_id')})",
             f"  sizing    target {decision['target_weight']:+.4f}, held {decision['held_weight']:+.4f} -> "
             f"{decision['new_weight']:+.4f} of capital at {decision['price']:.2f}",
             f"  order     {order.get('order_id')} {order.get('side')} {order.get('qty', 0):.6f} "
             f"{order.get('order_type')} {order.get('time_in_force')} cap {order.get('max_slippage_bps')} bps: "
             + " -> ".join(e["to"] for e in order.get("lifecycle", []))]
    for f in chain["fills"]:
        lines.append(f"  fill      {f['qty']:.6f} @ {f['price']:.2f} fee {f['fee']:.4f} slippage "
                     f"{f['slippage_bps'] if f['slippage_bps'] is not None else float('nan'):.2f} bps")
    after = (chain["position"] or {}).get("after_order") or {}
    lines.append(f"  position  {after.get('qty', 0):+.6f} {decision['symbol']} avg {after.get('avg_price') or 0:.2f}")
    lines.append(f"  pnl       order contribution {pnl.get('order_contribution', 0):+.4f} USD at mark "
                 f"{pnl.get('mark_price') or 0:.2f}")
    return lines
