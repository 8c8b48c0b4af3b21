"""TSMixer module: shapes, the cumulative-horizon head, RevIN reversibility, block wiring."""

from __future__ import annotations

import pytest
import torch

from omniwatch.ml.tsmixer import Dropout, TSMixer, TSMixerConfig, dropout_mask

torch.set_num_threads(1)

LOOKBACK, CHANNELS, PATH, HORIZONS = 24, 4, 8, (1, 4, 8)


def make_model(revin: bool = True, **overrides: object) -> TSMixer:
    torch.manual_seed(0)
    kwargs: dict = dict(
        lookback=LOOKBACK, path_steps=PATH, horizons=HORIZONS, n_blocks=2, d_ff=16, revin=revin
    )
    kwargs.update(overrides)
    return TSMixer(CHANNELS, **kwargs).eval()


def windows(batch: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, LOOKBACK, CHANNELS, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("revin", [True, False])
def test_forward_shapes(revin: bool) -> None:
    model = make_model(revin)
    x = windows(batch=7)
    assert model(x).shape == (7, len(HORIZONS))
    assert model.forward_path(x).shape == (7, PATH)


@pytest.mark.parametrize("revin", [True, False])
def test_horizon_forecasts_are_cumulative_sums_of_the_path(revin: bool) -> None:
    # given a model with a non-trivial head (random init), when we read path and horizons
    model = make_model(revin)
    x = windows()
    with torch.no_grad():
        path, horizons = model.forward_path(x), model(x)
    # then the forecast at h is the sum of the first h path steps
    for column, h in enumerate(HORIZONS):
        expected = path[:, :h].sum(dim=1)
        torch.testing.assert_close(horizons[:, column], expected, rtol=1e-5, atol=1e-6)
    # and h=4 is not simply step 4 (the test would pass trivially on a constant path otherwise)
    assert not torch.allclose(horizons[:, 1], path[:, 3])


def test_revin_makes_the_forecast_equivariant_to_per_window_affine_maps() -> None:
    # RevIN normalises each window per channel and maps the output back with the target channel's
    # statistics: shifting/scaling a window must shift/scale the target path the same way.
    model = make_model(revin=True, revin_eps=1e-12)
    x = windows().double()
    model = model.double()
    scale = torch.rand(x.shape[0], 1, CHANNELS, dtype=torch.float64) * 3 + 0.5
    shift = torch.randn(x.shape[0], 1, CHANNELS, dtype=torch.float64) * 5
    with torch.no_grad():
        base = model.forward_path(x)
        moved = model.forward_path(x * scale + shift)
    target = model.target_channel
    torch.testing.assert_close(moved, base * scale[:, :, target] + shift[:, :, target])


def test_without_revin_there_is_no_instance_normalisation() -> None:
    model = make_model(revin=False)
    assert model.revin is None
    assert not any("revin" in name for name, _ in model.named_parameters())
    x = windows().double()
    model = model.double()
    with torch.no_grad():  # a shifted window is no longer mapped to a shifted forecast
        assert not torch.allclose(model.forward_path(x + 3.0), model.forward_path(x) + 3.0)


def test_every_parameter_receives_a_gradient() -> None:
    model = make_model(revin=True).train()
    model(windows()).sum().backward()
    missing = [
        name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_dropout_is_active_in_train_mode_only() -> None:
    model = make_model(revin=False, dropout=0.5)
    x = windows()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_cpu_dropout_drops_at_the_configured_rate_and_stays_unbiased() -> None:
    # the numpy-drawn masks replace F.dropout on the CPU: same rate, same expectation
    torch.manual_seed(0)
    mask = dropout_mask((200, 168, 32), 0.1)
    dropped = float((mask == 0).float().mean())
    assert abs(dropped - 0.1) < 0.003  # 1.07M draws: the standard error is 0.0003
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - 6554 / 65536))]
    assert abs(float(mask.mean()) - 1.0) < 0.005


def test_cpu_dropout_masks_follow_torch_seeding() -> None:
    # seeds come from torch's generator, so manual_seed and a restored RNG state replay them
    layer = Dropout(0.3).train()
    x = torch.ones(64, 32)
    torch.manual_seed(5)
    first, second = layer(x), layer(x)
    torch.manual_seed(5)
    assert torch.equal(layer(x), first) and torch.equal(layer(x), second)
    assert not torch.equal(first, second)
    assert torch.equal(layer.eval()(x), x)


def test_time_mixing_equals_a_linear_over_the_transposed_window() -> None:
    # the matmul form W @ x + b must stay the paper's Linear along time, applied per channel
    model = make_model(revin=False)
    time_mix = model.blocks[0][0]
    x = windows()
    with torch.no_grad():
        expected = x + torch.relu(time_mix.linear(time_mix.norm(x).transpose(1, 2))).transpose(1, 2)
        torch.testing.assert_close(time_mix(x), expected, rtol=1e-5, atol=1e-6)


def test_blocks_follow_the_basic_tsmixer_layout() -> None:
    model = make_model(n_blocks=3)
    assert len(model.blocks) == 3
    time_mix, feature_mix = model.blocks[0]
    assert time_mix.linear.in_features == time_mix.linear.out_features == LOOKBACK
    assert (feature_mix.fc1.in_features, feature_mix.fc1.out_features) == (CHANNELS, 16)
    assert isinstance(time_mix.norm, torch.nn.LayerNorm)
    assert (model.head.in_features, model.head.out_features) == (LOOKBACK, PATH)


def test_state_dict_carries_only_learned_weights() -> None:
    assert "horizon_sum" not in make_model().state_dict()


def test_from_config_builds_the_configured_model() -> None:
    config = TSMixerConfig(
        lookback=LOOKBACK, path_steps=PATH, horizons=HORIZONS, d_ff=16, revin=True
    )
    model = TSMixer.from_config(config, CHANNELS)
    assert (model.lookback, model.path_steps, model.horizons) == (LOOKBACK, PATH, HORIZONS)
    assert model.revin is not None and model(windows()).shape == (5, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(horizons=(0, 4)),
        dict(horizons=(1, PATH + 1)),
        dict(horizons=()),
        dict(target_channel=CHANNELS),
    ],
)
def test_invalid_arguments_are_refused(overrides: dict) -> None:
    with pytest.raises(ValueError):
        make_model(**overrides)


def test_wrong_input_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="expected input"):
        make_model()(torch.zeros(2, LOOKBACK - 1, CHANNELS))


def test_early_temporal_projection_mixes_over_fewer_steps() -> None:
    """mix_steps (TSMixerx's first projection): the blocks and the head see mix_steps steps, the
    projection is one Linear over time shared by the channels, and the parameters shrink."""
    full, short = make_model(revin=False), make_model(revin=False, mix_steps=6)
    x = windows()
    assert short(x).shape == (5, len(HORIZONS)) and short.head.in_features == 6
    assert short.blocks[0][0].linear.in_features == 6 and short.project.in_features == LOOKBACK
    assert sum(p.numel() for p in short.parameters()) < sum(p.numel() for p in full.parameters())
    # The projection is linear over time per channel: projecting x equals W @ x + b per channel.
    with torch.no_grad():
        projected = torch.matmul(short.project.weight, x) + short.project.bias[:, None]
        expected = torch.stack([short.project(x[:, :, c]) for c in range(CHANNELS)], dim=2)
    torch.testing.assert_close(projected, expected)
    # and it is wired in: the forecast depends on the projection's weights.
    with torch.no_grad():
        before = short(x).clone()
        short.project.weight.mul_(2.0)
        assert not torch.allclose(before, short(x))


def test_mix_steps_is_in_the_config_and_leaves_older_configs_hashes_alone() -> None:
    plain = TSMixerConfig(lookback=LOOKBACK, path_steps=PATH, horizons=HORIZONS)
    assert "mix_steps" not in plain.to_json()  # runs named before the option keep their names
    projected = TSMixerConfig(lookback=LOOKBACK, path_steps=PATH, horizons=HORIZONS, mix_steps=6)
    assert projected.config_hash() != plain.config_hash()
    assert TSMixer.from_config(projected, CHANNELS).mix_steps == 6
