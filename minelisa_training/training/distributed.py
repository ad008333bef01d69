"""DeepSpeed set-up: the ZeRO-2 config for a recipe and a single-process launch without ops compiles.

The same code path serves a laptop CPU (gloo backend, fp32) and a GPU (fp16 + ZeRO-2 +
gradient checkpointing, as the paper); multi-GPU runs use the ``deepspeed`` launcher,
which sets the rank variables this module otherwise fills in for one process.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from .config import TrainConfig

# Never print DeepSpeed's own step lines: the trainer logs progress itself.
_QUIET_STEPS = 10**9


def effective_precision(config: TrainConfig, device: str) -> str:
    """fp16 needs a GPU; on CPU an fp16 recipe trains in fp32 (bf16 is honoured)."""
    if device == "cpu" and config.runtime.precision == "fp16":
        return "fp32"
    return config.runtime.precision


def describe_device(config: TrainConfig, device) -> str:
    """Where and in which precision a run trains, e.g. for the line before the model load."""
    precision = effective_precision(config, device.type)
    how = "runtime.device=auto" if config.runtime.device == "auto" else "asked"
    note = f"device {device} ({how}), precision {precision}"
    if precision != config.runtime.precision:
        note += f" (the recipe's {config.runtime.precision} needs CUDA; none here)"
    return note


def build_deepspeed_config(config: TrainConfig, device: str) -> dict[str, Any]:
    """The DeepSpeed JSON config for a recipe: AdamW, clipping, precision, ZeRO-2.

    The LR schedule is not in it: `lr_schedule.WarmupLinearDecay` (see `lr_scheduler_for`)
    is handed to ``deepspeed.initialize``, which steps and checkpoints it.
    """
    precision = effective_precision(config, device)
    return {
        "train_micro_batch_size_per_gpu": config.train.batch_size,
        "gradient_accumulation_steps": config.train.gradient_accumulation_steps,
        "gradient_clipping": config.optim.grad_clip,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": config.optim.lr,
                "betas": list(config.optim.betas),
                "eps": 1e-8,
                "weight_decay": config.optim.weight_decay,
                # torch.optim.AdamW: DeepSpeed's fused/CPU Adam would JIT-compile C++/CUDA ops.
                "torch_adam": True,
            },
        },
        "zero_optimization": {
            "stage": config.runtime.zero_stage,
            "contiguous_gradients": True,
            "overlap_comm": device == "cuda",
            "reduce_scatter": True,
            "reduce_bucket_size": int(5e8),
            "allgather_bucket_size": int(5e8),
        },
        "fp16": {
            "enabled": precision == "fp16",
            "loss_scale": 0,
            "initial_scale_power": 16,
            "loss_scale_window": 500,
        },
        "bf16": {"enabled": precision == "bf16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": _QUIET_STEPS,
        "wall_clock_breakdown": False,
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_single_process_env(device: str) -> None:
    """Fills in the rank variables for a run started without a launcher (one process).

    Without them DeepSpeed tries MPI discovery. On CPU it would also JIT-compile its
    shared-memory collective op on first use (about 90 s); gloo is enough for one
    process, so that op is marked unavailable (DeepSpeed keeps this dict for edits).
    """
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def lr_scheduler_for(config: TrainConfig, total_steps: int):
    """``deepspeed.initialize(lr_scheduler=...)``: the recipe's schedule on DeepSpeed's optimizer."""
    from functools import partial

    from .lr_schedule import WarmupLinearDecay

    optim = config.optim
    return partial(
        WarmupLinearDecay,
        lr=optim.lr,
        min_lr=optim.min_lr,
        warmup=optim.warmup_steps,
        total=max(total_steps, 1),
    )
