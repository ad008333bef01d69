"""What a service caller is told when the engine raises (no ROS imports: unit-testable)."""

from __future__ import annotations

import gc


def describe_model_error(exc: BaseException) -> str:
    """The caller-facing message for an exception raised by the engine."""
    import torch

    from minelisa_training.errors import InvalidInputError

    if isinstance(exc, InvalidInputError):
        return f"invalid request: {exc}"
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return (
            f"model error: GPU out of memory ({str(exc).splitlines()[0]}); "
            "try dtype fp16/bf16, a smaller image, or fewer instructions per call"
        )
    return f"model error: {type(exc).__name__}: {exc}"


def free_accelerator_memory() -> None:
    """Return cached GPU memory after an out-of-memory error or when the model is dropped."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
