"""How many bytes a model will take, and how many the device has, before anything is allocated.

A 7B model in fp32 does not fit a 32 GB workstation or a 24 GB card: loading it
anyway ends in the kernel's OOM killer (the machine freezes, no message). The
loader asks here first and refuses with the numbers and what would fit.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError

GIB = 1024**3
SKIP_ENV = "MINELISA_SKIP_MEMORY_CHECK"  # "1": load even when the estimate says no
HEADROOM = 1.05  # activations, allocator slack, the tokenizer and Python itself


def module_bytes(module: torch.nn.Module, skip_prefix: str | None = None) -> int:
    """Bytes of a module's parameters and buffers (works on the meta device)."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return sum(
        t.numel() * t.element_size()
        for name, t in tensors
        if not (skip_prefix and name.startswith(skip_prefix))
    )


def _cgroup_limit() -> int | None:
    for file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            usage_file = Path(file).with_name(
                "memory.current" if file.endswith("max") else "memory.usage_in_bytes"
            )
            try:
                return int(text) - int(usage_file.read_text().strip())
            except (OSError, ValueError):
                return int(text)
    return None


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device` (CUDA: free device memory; CPU: MemAvailable, cgroup-capped)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                host = int(line.split()[1]) * 1024
                limit = _cgroup_limit()
                return min(host, limit) if limit is not None else host
    except OSError:
        pass
    return None


def check_fits(needed: int, device: torch.device, what: str, hint: str = "") -> None:
    """Refuse with a clear message when `needed` bytes (plus headroom) exceed what is free.

    Raises:
        CheckpointError: naming needed vs available and `hint` (what would fit).
    """
    if os.environ.get(SKIP_ENV) == "1":
        return
    free = available_bytes(device)
    if free is None or needed * HEADROOM <= free:
        return
    raise CheckpointError(
        f"{what} needs about {needed * HEADROOM / GIB:.1f} GiB on {device} ({needed / GIB:.1f} GiB "
        f"of weights plus {HEADROOM - 1:.0%} headroom), but only {free / GIB:.1f} GiB are "
        f"available{': ' + hint if hint else ''} (set {SKIP_ENV}=1 to try anyway)"
    )
