"""The GPU path's switches: where the image views are made, and compiled encoder stages.

Both change speed, not results (within the tolerances measured and stated here), and
both keep the plain path selectable:

* image views ``exact``: PIL resizes on the host, pixel-identical to the reference
  processors; ``device``: torch resizes where the model runs (`transforms`: the SAM view
  within 1 level of 255, the CLIP view within 1 level on >= 99.9% of pixels); ``auto``:
  ``device`` on CUDA, where it takes ~8 ms of resizing off a host-bound call, ``exact``
  on the CPU, where evaluation and the tests run: there the reference processors' exact
  pixels are worth more than the ~10 ms per 1082x932 frame that ``device`` saves on two
  cores (benchmarks/RESULTS.md); choose ``device`` for a CPU robot.
* compile (True): `torch.compile` for the SAM image encoder and the LLM prompt prefix,
  the two fixed-shape stages of every frame (1024x1024 pixels; the same prefix length
  for every image). On CUDA with ``mode="reduce-overhead"``, i.e. CUDA graphs: one
  replay instead of ~1,650 small kernel launches. Compiling happens on the first call
  (seconds to minutes at 7B); when it fails (no C++ compiler for the CPU backend, an
  unsupported op or platform) the stage runs eagerly from then on and a warning says
  why, so the switch is safe everywhere. False (the default) never compiles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from .errors import InvalidInputError

IMAGE_VIEWS = ("auto", "exact", "device")

log = logging.getLogger(__name__)


def check_image_views(choice: str) -> str:
    """`choice` when it is one of `IMAGE_VIEWS`, else `InvalidInputError`."""
    if choice not in IMAGE_VIEWS:
        raise InvalidInputError(f"unknown image_views {choice!r}: choose {', '.join(IMAGE_VIEWS)}")
    return choice


def resolve_image_views(choice: str, device: torch.device) -> str:
    """``exact`` or ``device`` for `choice` on `device` (``auto``: device on CUDA)."""
    if check_image_views(choice) == "auto":
        return "device" if device.type == "cuda" else "exact"
    return choice


def check_compile(choice: bool) -> bool:
    """`choice` when it is a bool, else `InvalidInputError` (a string "off" is truthy)."""
    if not isinstance(choice, bool):
        raise InvalidInputError(f"compile must be true or false, got {choice!r}")
    return choice


def _detached(value: Any) -> Any:
    """Outputs copied out of a CUDA graph's memory pool, which the next replay reuses."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_detached(v) for v in value)
    return value


class CompiledStage:
    """`fn` through `torch.compile`, falling back to `fn` itself when compiling fails.

    A failure on the first call is a compile failure only if `fn` itself then succeeds
    on the same arguments; an error `fn` raises too is the caller's and propagates.
    """

    def __init__(self, fn: Callable[..., Any], name: str, device: torch.device) -> None:
        self.name = name
        self._eager = fn
        self._graphs = device.type == "cuda"
        mode = "reduce-overhead" if self._graphs else "default"
        self._compiled: Callable[..., Any] | None = torch.compile(fn, mode=mode, dynamic=False)
        self.fallback_reason = ""

    @property
    def compiled(self) -> bool:
        """Whether calls still go through the compiled function."""
        return self._compiled is not None

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            return self._eager(*args)
        try:
            out = self._compiled(*args)
        except Exception as exc:  # the compiler's many error types; checked below
            result = self._eager(*args)  # raises when the error is the input's, not ours
            self._compiled = None
            self.fallback_reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            log.warning("torch.compile of %s failed, running it eagerly: %s", self.name,
                        self.fallback_reason)  # fmt: skip
            return result
        return _detached(out) if self._graphs else out


def maybe_compiled(
    fn: Callable[..., Any], name: str, device: torch.device, enabled: bool
) -> Callable[..., Any]:
    """`CompiledStage(fn)` when `enabled`, else `fn`."""
    return CompiledStage(fn, name, device) if enabled else fn
