"""Which device trains and which serves: GPU 1 / GPU 0 when configured and present, else CPU."""

from __future__ import annotations

import dagster as dg


def resolve_device(preferred: str) -> tuple[str, str]:
    """(device, reason). ``preferred`` is ``cpu`` or ``cuda:N``; falls back to CPU with a reason."""
    if not preferred.startswith("cuda"):
        return "cpu", f"configured {preferred!r}"
    import torch

    if not torch.cuda.is_available():
        return "cpu", f"{preferred} configured but CUDA is not available: training on CPU"
    index = int(preferred.split(":", 1)[1]) if ":" in preferred else 0
    count = torch.cuda.device_count()
    if index >= count:
        return "cpu", f"{preferred} configured but only {count} GPU(s) present: training on CPU"
    return preferred, f"{preferred} ({torch.cuda.get_device_name(index)})"


class ComputeResource(dg.ConfigurableResource):
    """Training on the GPU-1 executor, serving on GPU 0, both with a CPU fallback."""

    training_device: str = "cuda:1"
    serving_device: str = "cuda:0"
    torch_threads: int = 1
    checkpoint_root: str | None = None  # $OMNIWATCH_HOME/checkpoints: per-epoch checkpoints, resumable

    def training(self, log=None) -> str:
        device, reason = resolve_device(self.training_device)
        if log is not None:
            log.info(f"training device: {device} ({reason})")
        if device == "cpu":
            import torch

            # One effective core here; more threads only contend with LightGBM and Dagster.
            torch.set_num_threads(self.torch_threads)
        return device
