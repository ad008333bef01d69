"""Where the code runs: the device, the default precision and the process rank.

One owner for each rule: the CLI commands, the evaluation, the trainer and the
ROS node all ask here, so "auto" and the default dtype mean the same everywhere.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import InvalidInputError

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(requested: str | torch.device | None = "auto") -> torch.device:
    """The torch device for `requested`: ``auto`` (or None/empty) is CUDA when present, else CPU.

    Raises:
        InvalidInputError: an unknown device name, or CUDA asked for where torch sees none.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    name = (requested or "auto").strip().lower()
    if name == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("device auto: %s", chosen)
        return chosen
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidInputError(f"unknown device {requested!r}: use {DEVICE_CHOICES}") from None
    if device.type not in ("cpu", "cuda"):
        raise InvalidInputError(f"unsupported device {requested!r}: use {DEVICE_CHOICES}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {requested!r} asked for, but torch sees no CUDA device (no NVIDIA driver, "
                "or a CPU-only torch build): use device auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    return device


def default_dtype(device: str | torch.device) -> str:
    """fp16 on CUDA (as the paper serves LISA-7B, and what fits a 24 GB card), fp32 on CPU."""
    return "fp16" if torch.device(device).type == "cuda" else "fp32"


def resolve_dtype_name(requested: str | None, device: str | torch.device) -> str:
    """`requested` checked against the known dtypes; None, "" or "auto" give `default_dtype`."""
    if requested in (None, "", "auto"):
        return default_dtype(device)
    if requested not in DTYPES:
        raise InvalidInputError(f"unknown dtype {requested!r}: choose auto, {', '.join(DTYPES)}")
    return requested


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The torch dtype for a name in `DTYPES` (a torch dtype passes through)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise InvalidInputError(
            f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}"
        ) from None


# -- processes ----------------------------------------------------------------------------
def rank() -> int:
    """This process's rank among the launched ones (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes were launched (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the one process that writes files and prints progress."""
    return rank() == 0


def init_distributed() -> bool:
    """Join the launcher's process group (gloo on CPU, NCCL on CUDA) when there are
    several processes; True when a group is running after the call."""
    if world_size() == 1 or not torch.distributed.is_available():
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return True


def gather_to_main(payload: object) -> list | None:
    """Every rank's `payload`, in rank order, on rank 0 (None elsewhere); `[payload]`
    in a single process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [payload]
    gathered: list | None = [None] * world_size() if is_main_process() else None
    torch.distributed.gather_object(payload, gathered, dst=0)
    return gathered


def barrier() -> None:
    """Wait for every rank, when a process group is running (a no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# -- timing ----------------------------------------------------------------------------
class Stopwatch:
    """Per-stage wall times in ms, or nothing at all (no device synchronisation) when off."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.device, self.enabled = device, enabled
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as `name` (added to earlier blocks of that name)."""
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        elapsed = (time.perf_counter() - start) * 1000.0
        self.timings[name] = self.timings.get(name, 0.0) + elapsed

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
