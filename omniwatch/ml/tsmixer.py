"""TSMixer (Chen et al. 2023, basic variant) as a plain PyTorch module.

The basic variant mixes over the input window and projects to the horizon only at the end:
``n_blocks`` x (time mixing, feature mixing), then a linear time projection. Here the projection
forecasts an hourly *path* of the target channel (the hourly log return), and the horizon forecasts
are cumulative sums of that path, so the 1 h, 4 h and 24 h predictions share one coherent path
instead of being three unrelated heads.

Input: ``(batch, lookback, channels)``, globally standardised and NaN-free (the trainer does that).
:class:`TSMixerConfig` is the frozen spec of a TSMixer run (architecture and training settings)
and :class:`NormStats` the global standardisation its inputs and labels live in; both sit beside
the model so that the model, the trainer and a loaded artifact read one definition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn


class TSMixerConfig(BaseModel):
    """Everything that determines a training run; frozen so that its hash names the run.

    Scheduler: ReduceLROnPlateau on the validation loss, not cosine. Early stopping ends runs at
    an epoch nobody knows in advance, so a cosine schedule tied to ``max_epochs`` would rarely
    reach its low rates; the plateau rule reacts to the same signal early stopping watches, and
    it reads the optimiser's current rate, so the NaN recovery's manual halving composes with it.
    Keep ``lr_patience`` below ``patience`` so the rate drops before training gives up.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback: int = Field(168, ge=1)
    path_steps: int = Field(24, ge=1)
    # TSMixerx's early temporal projection: the lookback is projected to ``mix_steps`` steps
    # (one Linear over time shared by the channels) before the mixing blocks, which then mix
    # over ``mix_steps`` instead of ``lookback`` steps. None: mix over the whole lookback.
    mix_steps: int | None = Field(None, ge=1)
    horizons: tuple[int, ...] = (1, 4, 24)
    target_channel: int = Field(0, ge=0)
    n_blocks: int = Field(2, ge=0)
    d_ff: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # Off by default for training: RevIN adds the window's trailing mean of the target back onto
    # every path step, which on returns is noise (MODEL-NOTES; our synthetic test: worse than a
    # zero forecast). The module keeps revin=True as its own default, as in the paper.
    revin: bool = False
    revin_eps: float = Field(1e-5, gt=0.0)
    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = Field(1.0, gt=0.0)
    loss_weights: tuple[float, ...] | None = None  # per horizon; None = equal
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    grad_clip_norm: float | None = Field(1.0, gt=0.0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(50, ge=1)
    patience: int = Field(5, ge=1)  # early stopping, in epochs without improvement
    min_delta: float = Field(0.0, ge=0.0)
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0)
    lr_patience: int = Field(2, ge=0)
    min_lr: float = Field(1e-6, ge=0.0)
    seed: int = Field(0, ge=0)
    max_nan_retries: int = Field(3, ge=0)
    max_oom_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TSMixerConfig:
        if not self.horizons or list(self.horizons) != sorted(set(self.horizons)):
            raise ValueError(f"horizons {self.horizons} must be non-empty and strictly increasing")
        if self.horizons[0] < 1 or self.horizons[-1] > self.path_steps:
            raise ValueError(f"horizons {self.horizons} must lie in 1..{self.path_steps}")
        weights = self.loss_weights
        if weights is not None and (
            len(weights) != len(self.horizons) or min(weights) < 0 or sum(weights) <= 0
        ):
            raise ValueError(f"loss_weights {weights} need one non-negative weight per horizon")
        return self

    def horizon_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """The training loss: per-horizon MSE or Huber, weighted by ``loss_weights`` (sum 1)."""
        if self.loss == "huber":
            per_elem = F.huber_loss(pred, target, reduction="none", delta=self.huber_delta)
        else:
            per_elem = (pred - target) ** 2
        raw = self.loss_weights or (1.0,) * len(self.horizons)
        weights = torch.tensor([w / sum(raw) for w in raw], device=pred.device)
        return (per_elem.mean(dim=0) * weights).sum()

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace; equal configs give equal strings."""
        data = self.model_dump(mode="json")
        if data["mix_steps"] is None:  # configs from before the option hash (and name runs) as they did
            del data["mix_steps"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class NormStats:
    """Global standardisation fitted on the training windows only, persisted with the model.

    Inputs: per-channel mean/std over every (window, step) of the training set, NaN ignored;
    labels: mean/std per horizon. A constant or all-missing column gets std 1 (and mean 0 when
    all-missing) so it standardises to zeros instead of NaN.
    """

    x_mean: torch.Tensor  # (channels,)
    x_std: torch.Tensor
    y_mean: torch.Tensor  # (horizons,)
    y_std: torch.Tensor

    @classmethod
    def from_training(cls, X: np.ndarray, y: np.ndarray, device: torch.device) -> NormStats:
        flat = np.asarray(X).reshape(-1, X.shape[2])  # a view: no copy of a large window array
        # nanmean/nanstd in two passes over one masked copy (numpy's pair makes four): the same
        # figures (population std), a third of the time on a training set's windows.
        finite = ~np.isnan(flat)
        count = finite.sum(axis=0)
        values = np.where(finite, flat, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN channels are handled below
            x_mean = values.sum(axis=0, dtype=np.float64) / count
            np.subtract(values, x_mean.astype(values.dtype), out=values)
            values[~finite] = 0.0
            x_std = np.sqrt(np.einsum("ij,ij->j", values, values, dtype=np.float64) / count)
        y_mean, y_std = np.mean(y, axis=0, dtype=np.float64), np.std(y, axis=0, dtype=np.float64)
        x_mean, y_mean = (np.where(np.isfinite(m), m, 0.0) for m in (x_mean, y_mean))
        x_std, y_std = (np.where(np.isfinite(s) & (s > 0), s, 1.0) for s in (x_std, y_std))
        as_tensor = partial(torch.tensor, dtype=torch.float32, device=device)
        return cls(as_tensor(x_mean), as_tensor(x_std), as_tensor(y_mean), as_tensor(y_std))

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise raw windows; missing values (NaN) become 0, the training mean."""
        # One temporary, then in place: a whole training set is standardised at once.
        return torch.nan_to_num_((x - self.x_mean).div_(self.x_std), nan=0.0)

    def scale_labels(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean.to(y.device)) / self.y_std.to(y.device)

    def unscale_labels(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.y_std.to(y.device) + self.y_mean.to(y.device)

    def to_payload(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).cpu() for name in ("x_mean", "x_std", "y_mean", "y_std")}

    @classmethod
    def from_payload(cls, payload: dict[str, torch.Tensor], device: torch.device) -> NormStats:
        return cls(**{name: value.to(device) for name, value in payload.items()})


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al. 2022) with a learnable per-channel affine.

    Statistics are per instance and per channel over the lookback, detached as in the reference
    implementation, and returned to the caller rather than kept on the module, so a forward pass
    holds no hidden state between calls.
    """

    def __init__(self, n_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_channels))
        self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(x_norm, mean, std)``; mean and std have shape ``(batch, 1, channels)``."""
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, mean, std

    def denormalize(self, y: Tensor, mean: Tensor, std: Tensor, channel: int) -> Tensor:
        """Map ``y`` (batch, steps), produced in channel ``channel``'s normalised space, back."""
        # eps**2 keeps the division finite if the learned scale collapses to zero (as in RevIN).
        y = (y - self.bias[channel]) / (self.weight[channel] + self.eps * self.eps)
        return y * std[:, :, channel] + mean[:, :, channel]


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks are drawn by numpy instead of torch's Mersenne Twister.

    On the CPU, ``F.dropout`` spends most of a TSMixer training step in ``bernoulli_`` (torch's
    CPU generator is sequential: ~14 ms for one (256, 168, 32) mask on this machine, against
    ~2 ms here). Each mask's seed is still drawn from torch's global generator, so seeding,
    checkpointed RNG state and bit-exact resume work exactly as before. The drop probability is
    quantised to 1/65536 (0.1 becomes 0.100006) and kept elements are scaled by the inverse of
    the realised keep rate, so the layer stays unbiased. Other devices use ``F.dropout``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not 0.0 < self.p < 1.0 or x.device.type != "cpu":
            return super().forward(x)
        return x * dropout_mask(x.shape, self.p)


def dropout_mask(shape: Sequence[int], p: float) -> Tensor:
    """A float32 keep mask with values 0 or 1/keep-rate, ``p`` quantised to 1/65536."""
    cut = min(round(p * 65536), 65535)  # p < 1 keeps at least one value in 65536
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    bits = np.random.Generator(np.random.SFC64(seed)).integers(0, 65536, size=tuple(shape), dtype=np.uint16)
    return torch.from_numpy(np.multiply(bits >= cut, np.float32(65536 / (65536 - cut)), dtype=np.float32))


class TimeMixing(nn.Module):
    """LayerNorm, one Linear over the lookback shared across channels, ReLU, dropout, residual."""

    def __init__(self, lookback: int, n_channels: int, dropout: float) -> None:
        super().__init__()
        # Normalising over (time, channels) jointly follows the paper's reference code; LayerNorm
        # rather than BatchNorm because our batches are small and the statistics must not depend on
        # the batch (predictions of one window must not change with its neighbours).
        self.norm = nn.LayerNorm([lookback, n_channels])
        self.linear = nn.Linear(lookback, lookback)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # linear(y^T)^T written as W @ y + b: the same mixing along time without the two
        # transposed copies of the activations that Linear over a transposed view costs.
        y = torch.matmul(self.linear.weight, self.norm(x)) + self.linear.bias[:, None]
        return x + self.dropout(torch.relu(y))


class FeatureMixing(nn.Module):
    """LayerNorm, two-layer MLP over channels (C -> d_ff -> C) with ReLU and dropout, residual."""

    def __init__(self, lookback: int, n_channels: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm([lookback, n_channels])
        self.fc1 = nn.Linear(n_channels, d_ff)
        self.fc2 = nn.Linear(d_ff, n_channels)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dropout(torch.relu(self.fc1(self.norm(x))))
        return x + self.dropout(self.fc2(y))


class TSMixer(nn.Module):
    """TSMixer forecasting the next ``path_steps`` values of ``target_channel``.

    ``forward`` returns ``(batch, len(horizons))``: the cumulative sum of the forecast path at each
    horizon h (steps 1..h). ``forward_path`` returns the path itself, ``(batch, path_steps)``, in
    the target channel's (globally standardised) units. With ``revin=False`` no instance
    normalisation is applied at all: on return series RevIN can hurt (MODEL-NOTES), so both must
    stay comparable.
    """

    horizon_sum: Tensor

    def __init__(
        self,
        n_channels: int,
        lookback: int = 168,
        path_steps: int = 24,
        horizons: Sequence[int] = (1, 4, 24),
        target_channel: int = 0,
        n_blocks: int = 2,
        d_ff: int = 64,
        dropout: float = 0.1,
        revin: bool = True,
        revin_eps: float = 1e-5,
        mix_steps: int | None = None,
    ) -> None:
        super().__init__()
        horizons = tuple(int(h) for h in horizons)
        if n_channels < 1 or lookback < 1 or path_steps < 1 or n_blocks < 0 or d_ff < 1:
            raise ValueError("n_channels, lookback, path_steps, d_ff must be >= 1; n_blocks >= 0")
        if not horizons or any(h < 1 or h > path_steps for h in horizons):
            raise ValueError(f"horizons {horizons} must be non-empty and lie in 1..{path_steps}")
        if not 0 <= target_channel < n_channels:
            raise ValueError(f"target_channel {target_channel} outside 0..{n_channels - 1}")
        if mix_steps is not None and mix_steps < 1:
            raise ValueError(f"mix_steps must be >= 1, got {mix_steps}")
        self.n_channels = n_channels
        self.lookback = lookback
        self.path_steps = path_steps
        self.horizons = horizons
        self.target_channel = target_channel
        self.revin = RevIN(n_channels, revin_eps) if revin else None
        self.mix_steps = mix_steps
        steps = mix_steps or lookback
        self.project = nn.Linear(lookback, mix_steps) if mix_steps is not None else None
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    TimeMixing(steps, n_channels, dropout),
                    FeatureMixing(steps, n_channels, d_ff, dropout),
                )
                for _ in range(n_blocks)
            )
        )
        # The paper projects every channel with one shared Linear; only the target channel's
        # projection is used, so it is the only one computed (same weights, same result).
        self.head = nn.Linear(steps, path_steps)
        # horizon_sum[s, j] = 1 when path step s (0-based) lies within horizon j: the horizon
        # forecasts are path @ horizon_sum. A matmul rather than torch.cumsum because cumsum on
        # CUDA raises under torch.use_deterministic_algorithms(True). Not persistent: it follows
        # from the config, so artifacts only carry learned weights.
        path = torch.arange(path_steps).unsqueeze(1)
        horizon_sum = (path < torch.tensor(horizons).unsqueeze(0)).float()
        self.register_buffer("horizon_sum", horizon_sum, persistent=False)

    @classmethod
    def from_config(cls, config: TSMixerConfig, n_channels: int) -> TSMixer:
        return cls(
            n_channels, lookback=config.lookback, path_steps=config.path_steps,
            horizons=config.horizons, target_channel=config.target_channel,
            n_blocks=config.n_blocks, d_ff=config.d_ff, dropout=config.dropout,
            revin=config.revin, revin_eps=config.revin_eps, mix_steps=config.mix_steps,
        )

    def forward_path(self, x: Tensor) -> Tensor:
        """Forecast path of the target channel, ``(batch, path_steps)``."""
        if x.ndim != 3 or x.shape[1] != self.lookback or x.shape[2] != self.n_channels:
            raise ValueError(
                f"expected input (batch, {self.lookback}, {self.n_channels}), got {tuple(x.shape)}"
            )
        if self.revin is not None:
            x, mean, std = self.revin.normalize(x)
        if self.project is not None:  # (batch, lookback, C) -> (batch, mix_steps, C), as TimeMixing mixes
            x = torch.matmul(self.project.weight, x) + self.project.bias[:, None]
        z = self.blocks(x)
        path = self.head(z[:, :, self.target_channel])
        if self.revin is not None:
            path = self.revin.denormalize(path, mean, std, self.target_channel)
        return path

    def forward(self, x: Tensor) -> Tensor:
        """Horizon forecasts ``(batch, len(horizons))``: cumulative path sums at steps h."""
        return self.forward_path(x) @ self.horizon_sum
