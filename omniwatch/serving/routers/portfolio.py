"""Portfolio scoring and volatility-scaled rebalancing within the risk limits."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from omniwatch.serving.decisions import AssetInput, annual_vol, rebalance, score_portfolio, vol_upper
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.predicting import window_vol
from omniwatch.serving.errors import ApiError
from omniwatch.serving.routers import errors
from omniwatch.serving.schemas import (
    PortfolioScoreRequest,
    PortfolioScoreResponse,
    RebalanceRequest,
    RebalanceResponse,
    RiskLimits,
)

router = APIRouter(tags=["portfolio"])


@router.post("/portfolio/score", response_model=PortfolioScoreResponse, responses=errors(401, 422, 503))
def score(body: PortfolioScoreRequest, services: Services = Depends(get_services)) -> PortfolioScoreResponse:
    """Expected return (bps) of the given weights under the newest forecasts, exposures, a
    volatility bound and the risk limits the weights break."""
    done, skipped = services.predictor.predict_many(list(body.weights))
    if skipped:
        raise ApiError(422, skipped[0].code, "; ".join(s.detail for s in skipped),
                       {"targets": [s.target for s in skipped]})
    preds = {t: p.predictions[body.horizon] for t, (p, _) in done.items()}
    vols = {t: annual_vol(window_vol(w)) for t, (_, w) in done.items()}
    result = score_portfolio(body.weights, preds, vols, services.limits)
    assets = [{"target": t, "weight": w, "prediction_bps": preds[t], "contribution_bps": result.contributions_bps[t],
               "vol_annual": vols[t], "model_version": done[t][0].model_version} for t, w in body.weights.items()]
    return PortfolioScoreResponse(horizon=body.horizon, expected_return_bps=result.expected_return_bps,
                                  gross_exposure=result.gross_exposure, net_exposure=result.net_exposure,
                                  vol_annual_upper=result.vol_annual_upper, assets=assets,
                                  limit_breaches=result.breaches)


@router.post("/portfolio/rebalance", response_model=RebalanceResponse, responses=errors(401, 422, 503))
def rebalance_route(body: RebalanceRequest, services: Services = Depends(get_services)) -> RebalanceResponse:
    """Target weights: signal direction per asset (threshold of the horizon), an equal share of
    the volatility budget each, capped per asset, by gross and by net; small trades skipped."""
    targets = body.targets or list(services.settings.liquid_symbols)
    done, skipped = services.predictor.predict_many(targets)
    threshold = services.serving.thresholds_bps()[body.horizon]
    inputs = [AssetInput(t, p.predictions[body.horizon], threshold, annual_vol(window_vol(w)))
              for t, (p, w) in done.items()]
    limits = services.limits
    decision = rebalance(inputs, limits, body.current_weights)
    assets = [{"target": a.target, "prediction_bps": a.prediction_bps, "threshold_bps": a.threshold_bps,
               "direction": decision.directions[a.target], "vol_annual": a.vol_annual,
               "raw_weight": decision.raw_weights[a.target], "weight": decision.weights[a.target],
               "trade": decision.trades[a.target]} for a in inputs]
    vols = {a.target: a.vol_annual for a in inputs}
    return RebalanceResponse(
        horizon=body.horizon, target_weights=decision.weights, trades=decision.trades,
        gross_exposure=sum(abs(w) for w in decision.weights.values()), net_exposure=sum(decision.weights.values()),
        vol_annual_upper=vol_upper(decision.weights, vols),
        binding_limits=decision.binding, limits=RiskLimits(**asdict(limits)), assets=assets, skipped=skipped)
