"""Checkpoint and reproducibility plumbing for the TSMixer trainer.

Device resolution, seeding and the deterministic-algorithms switch; the run state and epoch
records a checkpoint carries; atomic checkpoint and model-artifact files, RNG state capture and
CPU state snapshots.

Kept apart from the training loop so that each piece (what a checkpoint holds, how it is written,
when it may be resumed) can be read and tested on its own.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
ARTIFACT_FORMAT = 1


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Turn on ``torch.use_deterministic_algorithms`` for the block, then restore the caller's mode.

    The switch is process-global; restoring it keeps training from changing the behaviour of
    unrelated code in the same process (a Dagster run may do more than train).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu`` or ``cuda[:N]``; a CUDA device that is not there is an error, never a silent CPU."""
    resolved = torch.device(device)
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise ValueError(f"unsupported device {str(device)!r}: use 'cpu' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available here")
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float  # weighted loss in standardised label units
    val_loss: float
    lr: float  # the rate the epoch trained with
    batch_size: int


@dataclass
class RunState:
    """Mutable training progress; exactly what a checkpoint must carry besides the states."""

    batch_size: int
    rng: dict[str, Any]
    best_state: dict[str, torch.Tensor]
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    nan_restarts: int = 0
    oom_halvings: int = 0
    history: list[EpochRecord] = field(default_factory=list)

    def done(self, max_epochs: int, patience: int) -> bool:
        return len(self.history) >= max_epochs or self.bad_epochs >= patience

    def add(self, record: EpochRecord, state_dict: dict[str, Any], min_delta: float) -> None:
        """Append a finished epoch; keep its weights if it beat the best by more than min_delta."""
        if record.val_loss < self.best_val - min_delta:
            self.best_val, self.best_epoch, self.bad_epochs = record.val_loss, record.epoch, 0
            self.best_state = cpu_clone(state_dict)
        else:
            self.bad_epochs += 1
        self.history.append(record)

    def to_payload(self) -> dict[str, Any]:
        payload = {k: v for k, v in vars(self).items() if k != "history"}
        return {**payload, "history": [asdict(r) for r in self.history]}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RunState:
        history = [EpochRecord(**r) for r in payload["history"]]
        return cls(**{**payload, "history": history})


class CheckpointMismatchError(RuntimeError):
    """A checkpoint file's stored identity (format, config hash, data) is not its run's."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    A reader (or a process resuming after a crash) sees the old file or the new one, never a
    torn write; the directory fsync makes the rename itself survive a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide artifacts from a serving user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def cpu_clone(obj: Any) -> Any:
    """Deep copy of a (nested) state dict with every tensor cloned onto the CPU.

    Snapshots live on the CPU so that keeping one does not cost accelerator memory, which is
    exactly what runs short when we need to roll back after an out-of-memory error.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {key: cpu_clone(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [cpu_clone(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(cpu_clone(value) for value in obj)
    return obj


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Every RNG stream training draws from, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["internal"]), py_state["gauss_next"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def data_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the shapes, dtypes and bytes of the arrays a run is trained on.

    Part of a checkpoint's identity beside the config hash: resuming a run on other data would
    silently mix two trainings.
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))
    return digest.hexdigest()


class CheckpointStore:
    """The latest-epoch checkpoint of one training run under a caller's checkpoint directory.

    A run is identified by (config hash, data fingerprint) and keeps its checkpoint in its own
    sub-folder, ``<directory>/<config hash[:16]>-<data hash[:16]>/checkpoint.pt``. So the same
    directory can serve many runs: another config or other data starts fresh in a new folder and
    never overwrites (or resumes) someone else's progress. The full hashes are stored inside and
    checked on load; a file whose identity does not match its folder is refused with
    :class:`CheckpointMismatchError` rather than trusted.
    """

    def __init__(self, directory: str | os.PathLike[str], config_hash: str, data_hash: str) -> None:
        self.config_hash, self.data_hash = config_hash, data_hash
        self.path = Path(directory) / f"{config_hash[:16]}-{data_hash[:16]}" / CHECKPOINT_FILE

    def load(self) -> dict[str, Any] | None:
        """The stored checkpoint of this run; ``None`` when there is none yet."""
        if not self.path.exists():
            return None
        # weights_only: a checkpoint holds tensors and plain values only, so no pickle code runs.
        payload = torch.load(self.path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointMismatchError(
                f"{self.path} has checkpoint format {payload.get('format')!r}, "
                f"this trainer writes {CHECKPOINT_FORMAT}: delete it to start over"
            )
        for name in ("config_hash", "data_hash"):
            if payload.get(name) != getattr(self, name):
                raise CheckpointMismatchError(
                    f"{self.path} holds a run with {name} {str(payload.get(name))[:16]}, not "
                    f"{getattr(self, name)[:16]}: it was moved or tampered with; delete it"
                )
        return payload

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any) -> RunState | None:
        """Load the stored states into model, optimiser and scheduler; ``None`` if no checkpoint."""
        payload = self.load()
        if payload is None:
            return None
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        return RunState.from_payload(payload["state"])

    def save_run(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 state: RunState) -> None:
        """Write the run's states atomically, replacing the previous epoch's checkpoint."""
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "config_hash": self.config_hash,
            "data_hash": self.data_hash, "epoch": state.history[-1].epoch,
            "model": cpu_clone(model.state_dict()), "optimizer": cpu_clone(optimizer.state_dict()),
            "scheduler": scheduler.state_dict(), "state": state.to_payload(),
        }, self.path)


def save_artifact(path: str | os.PathLike[str], **payload: Any) -> None:
    """A model artifact: one atomic ``torch.save`` file of tensors and plain values."""
    atomic_torch_save({"format": ARTIFACT_FORMAT, **payload}, Path(path))


def load_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    # weights_only: loading a model must not run pickled code from the file.
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path}: unknown model artifact format {payload.get('format')!r}")
    return payload
