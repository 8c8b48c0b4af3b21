"""Portfolio scoring and volatility-scaled rebalancing within the risk limits."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import ApiError, ApiErrorCode, documented
from omniwatch.serving.portfolio.rollout import blended, blended_weight
from omniwatch.serving.portfolio.schemas import (
    AssetRebalance,
    AssetScore,
    PortfolioScoreRequest,
    PortfolioScoreResponse,
    RebalanceRequest,
    RebalanceResponse,
)
from omniwatch.serving.predict.service import window_vol
from omniwatch.serving.signals.schemas import RolloutBlend
from omniwatch.trading.portfolio import AssetInput, annual_vol, score_portfolio, settle, target_book, vol_upper
from omniwatch.trading.signals import decide_signal

# Both routes score through the predictor, which stores a prediction row per target: keyed, like
# predict/* (rows in the warehouse name who filled them).
router = APIRouter(tags=["portfolio"], dependencies=[Security(require_api_key)])


@router.post("/portfolio/score", response_model=PortfolioScoreResponse, responses=documented(401, 422, 503))
def score(body: PortfolioScoreRequest, services: Services = Depends(get_services)) -> PortfolioScoreResponse:
    """Expected return (bps) of the given weights under the newest forecasts (during a rollout,
    champion and candidate blended by the stage), exposures, a volatility bound and the risk
    limits the weights break. A target without a fresh snapshot fails the request."""
    done, skipped = services.predictor.predict_many(list(body.weights))
    if skipped:
        stale = [s for s in skipped if s.code == ApiErrorCode.STALE_FEATURES]
        first = (stale or skipped)[0]
        raise ApiError(503 if stale else 422, first.code, "; ".join(s.detail for s in skipped),
                       {**(first.context or {}), "targets": [s.target for s in skipped]})
    served = {t: blended(p, body.horizon) for t, (p, _) in done.items()}
    preds = {t: f for t, (f, _) in served.items()}
    vols = {t: annual_vol(window_vol(w)) for t, (_, w) in done.items()}
    result = score_portfolio(body.weights, preds, vols, services.limits)
    assets = [{"target": t, "weight": w, "prediction_bps": preds[t], "contribution_bps": result.contributions_bps[t],
               "vol_annual": vols[t], "model_version": done[t][0].model_version,
               "snapshot_age_seconds": done[t][0].snapshot_age_seconds, "rollout": served[t][1]}
              for t, w in body.weights.items()]
    return PortfolioScoreResponse(horizon=body.horizon, expected_return_bps=result.expected_return_bps,
                                  gross_exposure=result.gross_exposure, net_exposure=result.net_exposure,
                                  vol_annual_upper=result.vol_annual_upper,
                                  assets=[AssetScore.model_validate(a) for a in assets],
                                  limit_breaches=result.breaches)


@router.post("/portfolio/rebalance", response_model=RebalanceResponse, responses=documented(401, 422, 503))
def rebalance_route(body: RebalanceRequest, services: Services = Depends(get_services)) -> RebalanceResponse:
    """Target weights: signal direction per asset (threshold of the horizon), an equal share of
    the volatility budget each, capped per asset, by gross and by net; small trades skipped.
    During a rollout the champion's book and the candidate's are mixed by the stage
    (``(1 - s) * champion + s * candidate``, ``s = rollout_stage / 100``) before small trades are
    skipped; both books keep every limit, so their mix does too."""
    targets = body.targets or list(services.settings.liquid_symbols)
    done, skipped = services.predictor.predict_many(targets)
    threshold = services.serving.thresholds_bps()[body.horizon]
    limits = services.limits
    vols = {t: annual_vol(window_vol(w)) for t, (_, w) in done.items()}
    champion = target_book([AssetInput(t, p.predictions[body.horizon], threshold, vols[t])
                            for t, (p, _) in done.items()], limits)
    rolling = {t: p for t, (p, _) in done.items() if p.candidate is not None}
    candidate = target_book([AssetInput(t, p.candidate.horizon_predictions[body.horizon], threshold, vols[t])
                             for t, p in rolling.items() if p.candidate is not None], limits) if rolling else None
    mixed: dict[str, tuple[float, RolloutBlend | None]]
    raw: dict[str, float]
    forecasts: dict[str, float]
    mixed, raw, forecasts, binding = {}, {}, {}, list(champion.binding)
    for t, (p, _) in done.items():
        if candidate is None or t not in rolling:
            mixed[t], raw[t] = (champion.weights[t], None), champion.raw_weights[t]
            forecasts[t] = p.predictions[body.horizon]
            continue
        mixed[t] = blended_weight(champion.weights[t], candidate.weights[t], p)
        raw[t] = blended_weight(champion.raw_weights[t], candidate.raw_weights[t], p)[0]
        forecasts[t] = blended(p, body.horizon)[0]
    if candidate is not None:
        binding += [b for b in candidate.binding if b not in binding]
    weights, trades = settle({t: w for t, (w, _) in mixed.items()}, body.current_weights, vols, limits)
    assets = [{"target": t, "prediction_bps": forecasts[t], "threshold_bps": threshold,
               "direction": decide_signal(forecasts[t], threshold).direction, "vol_annual": vols[t],
               "raw_weight": raw[t], "weight": weights[t], "trade": trades[t], "model_version": p.model_version,
               "snapshot_age_seconds": p.snapshot_age_seconds, "rollout": mixed[t][1]}
              for t, (p, _) in done.items()]
    return RebalanceResponse(
        horizon=body.horizon, target_weights=weights, trades=trades,
        gross_exposure=sum(abs(w) for w in weights.values()), net_exposure=sum(weights.values()),
        vol_annual_upper=vol_upper(weights, vols),
        binding_limits=binding, limits=limits, assets=[AssetRebalance.model_validate(a) for a in assets],
        skipped=skipped)
