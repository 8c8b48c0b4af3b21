"""Device choice: GPU 1 for training when configured and present, CPU otherwise, with a reason."""

from __future__ import annotations

import logging

import torch

from omniwatch.resources.compute import ComputeResource, resolve_device


def test_cuda_1_falls_back_to_cpu_with_a_reason_when_absent():
    device, reason = resolve_device("cuda:1")
    if torch.cuda.device_count() >= 2:
        assert device == "cuda:1"
    else:
        assert device == "cpu" and "cuda:1" in reason and "CPU" in reason


def test_cpu_is_honoured_and_the_choice_is_logged(caplog):
    log = logging.getLogger("omniwatch.test")
    with caplog.at_level(logging.INFO, logger="omniwatch.test"):
        assert ComputeResource(training_device="cpu").training(log) == "cpu"
    assert "training device: cpu" in caplog.text


def test_gpu_training_sits_in_the_gpu_pool():
    from omniwatch.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys()}
    assert pools["tsmixer_model"] == {"gpu"}
    assert all(not p for name, p in pools.items() if name != "tsmixer_model")
