"""Edge-sized weights: the LLM's decoder-layer linears in int8 or 4-bit (``--quantize``).

The Llama decoder layers hold ~6.5 of LISA-7B's ~7.7 B parameters; their linear
layers (attention q/k/v/o and the MLP's gate/up/down) are replaced by
bitsandbytes modules. The embeddings, ``lm_head``, norms, CLIP, SAM, the projector
and the ``[SEG]`` head stay in the model's dtype: they are small, and the mask
path runs through them.

* ``int8``: ``bnb.nn.Linear8bitLt`` (LLM.int8(): per-row int8 weights, activation
  columns above 6.0 computed in 16-bit, the threshold of the paper and of
  transformers' default). 1 byte per weight plus a 4-byte scale per output row.
* ``int4``: ``bnb.nn.Linear4bit`` with NF4 and double quantization (the QLoRA
  recipe). 0.5 byte per weight plus ~0.13 bit of block scales; computes in the
  model's dtype (on CPUs with AVX512-BF16, bitsandbytes' CPU kernel computes in bf16).

Why bitsandbytes: one maintained library whose int8 and 4-bit layers both run on
the CPU (so CI tests the real code path, no GPU needed) and on NVIDIA GPUs of compute
capability 7.5+ (int8) / 6.0+ (4-bit), Jetson Orin (8.7) included; a Jetson Xavier
(7.2) gets int4 only. torchao (the other candidate) runs int8 weight-only on the
CPU, but its int4 layout needs the CUDA-only ``mslk`` kernels and does not run on the
CPU at all, so no CPU test could cover ``int4``. On a Jetson, bitsandbytes' aarch64
wheels on PyPI are built for server-ARM (sbsa) CUDA, not JetPack's, and fail at the
first CUDA call: build it on the device against JetPack's CUDA
(``cmake -DCOMPUTE_BACKEND=cuda -DCOMPUTE_CAPABILITY=87``) or use a Jetson AI Lab wheel.

Quantization saves memory, not CPU time: on the CPU the bitsandbytes kernels are
slower than PyTorch's float matmuls (benchmarks/RESULTS.md). It is meant for GPUs
whose memory cannot hold the 16-bit LLM.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import ModuleType

import torch
from torch import nn

from .errors import InvalidInputError
from .model_options import QUANTIZE_MODES
from .modeling.lisa import MineLisaModel

INSTALL_HINT = "pip install bitsandbytes (or pip install 'minelisa[quantize]')"
INT8_THRESHOLD = 6.0  # LLM.int8() outlier threshold (activations), the paper's value
INT4_TYPE = "nf4"
# bitsandbytes' int8 matmul on CUDA needs Turing or newer (its documented requirement).
INT8_MIN_CAPABILITY = (7, 5)
# Two notices bitsandbytes logs that say nothing a user can act on, dropped (other
# records pass): on import on AVX512-BF16 CPUs, that an optional fused CPU kernel could
# not be fetched from the Hugging Face Hub by the `kernels` package (nothing is
# downloaded here; bitsandbytes then uses its own compiled CPU kernel); and, on every
# int8 call with fp32 inputs, that activations are quantized through fp16 (LLM.int8()
# always does), which would flood a node's log at each frame.
_NOTICES = {
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
    "bitsandbytes.autograd._functions": "MatMul8bitLt: inputs will be cast from",
}


def check_mode(mode: str) -> str:
    """`mode` if it is one of `QUANTIZE_MODES`; else `InvalidInputError`."""
    if mode not in QUANTIZE_MODES:
        raise InvalidInputError(
            f"unknown quantization {mode!r}: choose {', '.join(QUANTIZE_MODES)}"
        )
    return mode


class _DropNotice(logging.Filter):
    """Drops the records of one logger that start with one known notice."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _drop_notices() -> None:
    for name, prefix in _NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))


def load_backend(mode: str) -> ModuleType:
    """The `bitsandbytes` module, imported on first use (its import takes seconds).

    Raises:
        InvalidInputError: bitsandbytes is not installed or cannot load; the message
            says what to install.
    """
    try:
        _drop_notices()  # before the import, which logs the first one
        import bitsandbytes
        import bitsandbytes.nn  # noqa: F401  (the layer classes)
    except (ImportError, OSError) as exc:
        raise InvalidInputError(
            f"--quantize {mode} needs the bitsandbytes package, which cannot be imported "
            f"({exc}): {INSTALL_HINT}"
        ) from exc
    return bitsandbytes


def _linears(module: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    return [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear  # not already a bitsandbytes subclass
    ]


def decoder_linears(model: MineLisaModel) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) for every `nn.Linear` inside the LLM's decoder layers."""
    return [found for layer in model.language_model.model.layers for found in _linears(layer)]


def quantize_linears(module: nn.Module, mode: str, dtype: torch.dtype) -> int:
    """Replace every `nn.Linear` inside `module` by an int8 or 4-bit one; how many.

    Each is quantized on its own device and swapped in, and its full-precision weight
    freed before the next: the peak is `module` plus one quantized linear.

    Args:
        module: e.g. one decoder layer.
        mode: ``int8`` or ``int4``.
        dtype: the 4-bit layers' compute dtype (the model's).

    Raises:
        InvalidInputError: as `quantize_language_model`.
    """
    if check_mode(mode) == "none":
        return 0
    bnb = load_backend(mode)
    todo = _linears(module)
    count = len(todo)
    while todo:
        parent, name, linear = todo.pop()  # the list lets go of it too
        _check_device(mode, linear.weight.device)
        quantized = _int8(bnb, linear) if mode == "int8" else _int4(bnb, linear, dtype)
        quantized.train(linear.training)
        setattr(parent, name, quantized)
        del linear  # the last reference: the full-precision weight is freed here
    return count


def quantize_language_model(model: MineLisaModel, mode: str) -> MineLisaModel:
    """Replace the LLM decoder layers' linears by int8 or 4-bit ones, in place.

    Layer by layer, one linear at a time (`quantize_linears`): the peak memory is the
    model plus one quantized linear. 4-bit layers compute in the model's dtype.

    Args:
        model: a loaded `MineLisaModel`.
        mode: ``none`` (returns `model` unchanged), ``int8`` or ``int4``.

    Returns:
        `model`, quantized.

    Raises:
        InvalidInputError: an unknown mode, bitsandbytes missing, or int8 asked for on
            a GPU older than compute capability 7.5.
    """
    if check_mode(mode) == "none":
        return model
    load_backend(mode)  # a missing package is said before any layer changes
    dtype = model.dtype
    for layer in model.language_model.model.layers:
        quantize_linears(layer, mode, dtype)
    return model


def _check_device(mode: str, device: torch.device) -> None:
    if mode == "int8" and device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < INT8_MIN_CAPABILITY:
            raise InvalidInputError(
                f"--quantize int8 needs a GPU of compute capability 7.5 or newer; this one is "
                f"{capability[0]}.{capability[1]}: use --quantize int4"
            )


def _bias(linear: nn.Linear) -> nn.Parameter | None:
    return None if linear.bias is None else nn.Parameter(linear.bias.data, requires_grad=False)


def _int8(bnb: ModuleType, linear: nn.Linear) -> nn.Module:
    weight = linear.weight.data
    # Built on "meta": no throw-away random init of a full-size float weight.
    layer = bnb.nn.Linear8bitLt(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        has_fp16_weights=False,
        threshold=INT8_THRESHOLD,
        device="meta",
    )
    # The functional API quantizes where the weight is (Int8Params.to only does from CPU).
    rows, scales, _ = bnb.functional.int8_vectorwise_quant(weight.to(torch.float16))
    layer.weight = bnb.nn.Int8Params(
        rows, requires_grad=False, has_fp16_weights=False, CB=rows, SCB=scales
    )
    layer.bias = _bias(linear)
    return layer


def _int4(bnb: ModuleType, linear: nn.Linear, dtype: torch.dtype) -> nn.Module:
    layer = bnb.nn.Linear4bit(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        compute_dtype=dtype,
        compress_statistics=True,
        quant_type=INT4_TYPE,
        device="meta",
    )
    weight = bnb.nn.Params4bit(
        linear.weight.data,
        requires_grad=False,
        compress_statistics=True,
        quant_type=INT4_TYPE,
        module=layer,
    )
    layer.weight = weight.to(linear.weight.device)  # quantizes on that device
    layer.bias = _bias(linear)
    return layer


def quantization_of(model: MineLisaModel) -> str:
    """``int8``, ``int4`` or ``none``: what `quantize_language_model` did to `model`."""
    kinds = {type(m).__name__ for m in model.language_model.model.layers.modules()}
    if "Linear8bitLt" in kinds:
        return "int8"
    return "int4" if "Linear4bit" in kinds else "none"


def _state_tensors(owner: object) -> Iterator[torch.Tensor]:
    """Quantization state hung on a parameter or module (int8 scales, 4-bit absmax...)."""
    for attr in ("CB", "SCB"):
        value = getattr(owner, attr, None)
        if isinstance(value, torch.Tensor):
            yield value
    state = getattr(owner, "quant_state", None)
    while state is not None:  # a 4-bit state, and its nested state for the block scales
        for attr in ("absmax", "code", "offset"):
            value = getattr(state, attr, None)
            if isinstance(value, torch.Tensor):
                yield value
        state = getattr(state, "state2", None)


def weight_bytes(module: nn.Module) -> int:
    """Bytes held by `module`'s parameters, buffers and quantization state.

    Each storage is counted once (an int8 weight and its ``CB`` share one), so the
    number is what the weights occupy in memory, quantized or not.
    """
    seen: dict[int, int] = {}
    tensors: list[torch.Tensor] = [*module.parameters(), *module.buffers()]
    for sub in module.modules():
        tensors += _state_tensors(getattr(sub, "state", None))
        for param in sub.parameters(recurse=False):
            tensors += _state_tensors(param)
    for tensor in tensors:
        if tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())
