"""Loading MineLISA from local files, in any format `formats.detect` recognises.

The model is first built on the meta device (no memory) to know its exact size;
`memory.check_fits` refuses before anything is allocated when the chosen dtype
cannot fit. It is then built once, directly in the target dtype and on the
target device, without random initialisation, and every tensor is copied in
from the memory-mapped files: no full-precision copy on the host unless fp32
was asked for. Missing keys fail by name, unexpected ones are reported.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import CLIPVisionModel
from transformers import logging as hf_logging
from transformers.initialization import no_init_weights

from ..config import MineLisaConfig
from ..errors import CheckpointError
from ..modeling.lisa import MineLisaModel
from ..modeling.sam import infer_sam_geometry
from ..prompts import SEG_TOKEN
from ..runtime import DTYPES, torch_dtype
from ..tokenization import LisaTokenizer
from .files import RECOMPUTED_SUFFIX, map_lisa_key, read_weights
from .formats import DetectedCheckpoint, detect
from .memory import GIB, check_fits, module_bytes

log = logging.getLogger(__name__)

SAM_PTH_PREFIX = "visual_model."


@dataclass
class LoadReport:
    """What a load did: counts, and the names of ignored, unexpected and fresh tensors."""

    format: str
    path: str
    loaded: int = 0
    ignored: list[str] = field(default_factory=list)  # recomputed buffers (rotary inv_freq)
    unexpected: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # initialised here, not loaded

    def summary(self) -> str:
        """One line for the console."""
        parts = [f"{self.format} checkpoint {self.path}: {self.loaded} tensors loaded"]
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored (recomputed from the config)")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {_names(self.unexpected)}")
        if self.fresh:
            parts.append(f"initialised fresh: {_names(self.fresh)}")
        return "; ".join(parts)


@dataclass
class LoadedModel:
    """A loaded model, its tokenizer and the report of the load."""

    model: MineLisaModel
    tokenizer: LisaTokenizer
    report: LoadReport


@dataclass
class _Plan:
    """Everything needed to build and fill the model, decided per format."""

    config: MineLisaConfig
    tokenizer: LisaTokenizer
    sources: list[tuple[Path, Callable[[str], str | None]]]  # file, key -> model key
    clip: CLIPVisionModel | None = None
    fresh_head: bool = False


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


@contextlib.contextmanager
def construction(dtype: torch.dtype, device: torch.device, skip_init: bool):
    """Build parameters directly in the target dtype and device; skip random
    initialisation when every parameter will be overwritten by the checkpoint."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        skip = no_init_weights() if skip_init else contextlib.nullcontext()
        with torch.device(device), skip:
            yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    # A full CLIP folder holds the text tower too: transformers would list its ~200
    # unused keys. The loader prints one summary line instead.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _load_clip(
    vision_tower: str | None, config: MineLisaConfig, dtype: torch.dtype
) -> CLIPVisionModel:
    if not vision_tower or not Path(vision_tower).is_dir():
        named = (
            f" (its config names {config.vision_tower!r}, a hub id)" if config.vision_tower else ""
        )
        raise CheckpointError(
            "this checkpoint does not contain the CLIP vision tower"
            + named
            + ": pass --vision-tower DIR with a local copy of openai/clip-vit-large-patch14"
        )
    try:
        with _quiet_transformers():
            clip = CLIPVisionModel.from_pretrained(vision_tower, local_files_only=True, dtype=dtype)
    except Exception as exc:
        raise CheckpointError(
            f"cannot load the CLIP vision tower from {vision_tower}: {exc}"
        ) from exc
    log.info("CLIP vision tower from %s (its text tower, if present, is not used)", vision_tower)
    vc = clip.config
    config.vision.update(
        {
            name: getattr(vc, name)
            for name in (
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "image_size",
                "patch_size",
                "projection_dim",
                "hidden_act",
                "layer_norm_eps",
            )
        }
    )
    config.vision_tower = str(vision_tower)
    return clip


def _tokenizer(path: Path) -> LisaTokenizer:
    try:
        return LisaTokenizer.from_dir(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(str(exc)) from exc


def _plan_bundle(found: DetectedCheckpoint, dtype: torch.dtype, **_: object) -> _Plan:
    config = MineLisaConfig.from_dict(found.meta["config"])
    return _Plan(config, _tokenizer(found.path), [(f, lambda k: k) for f in found.files])


def _plan_hf(
    found: DetectedCheckpoint,
    dtype: torch.dtype,
    vision_tower: str | None = None,
    sam_checkpoint: str | Path | None = None,
) -> _Plan:
    path, sources = found.path, [(f, map_lisa_key) for f in found.files]
    if found.format == "lisa":
        try:
            sam_cfg = infer_sam_geometry(found.shapes, prefix="model.visual_model.")
        except KeyError as exc:
            raise CheckpointError(f"{path}: {exc.args[0]}") from None
    else:
        if sam_checkpoint is None:
            raise CheckpointError(
                f"{path} is a base LLaVA checkpoint without SAM: pass a SAM .pth "
                "(e.g. sam_vit_h_4b8939.pth)"
            )
        sam_file = Path(sam_checkpoint)
        if not sam_file.is_file():
            raise CheckpointError(f"SAM checkpoint not found: {sam_file}")
        try:
            sam_cfg = infer_sam_geometry(read_weights(sam_file))
        except KeyError as exc:
            raise CheckpointError(f"{sam_file}: {exc.args[0]}") from None
        sources.append((sam_file, lambda k: SAM_PTH_PREFIX + k))
    try:
        config = MineLisaConfig.from_lisa_config(found.meta, sam=sam_cfg)
    except ValueError as exc:
        raise CheckpointError(f"{path / 'config.json'}: {exc}") from exc
    tokenizer = _tokenizer(path)
    if SEG_TOKEN not in tokenizer.added_tokens:
        tokenizer.added_tokens[SEG_TOKEN] = len(tokenizer)
        tokenizer = LisaTokenizer(tokenizer.model_file, tokenizer.added_tokens)
    config.llm["vocab_size"] = max(int(config.llm.get("vocab_size", 0)), len(tokenizer))
    clip = None
    if not any(k.startswith("model.vision_tower.") for k in found.shapes):
        clip = _load_clip(str(vision_tower) if vision_tower else config.vision_tower, config, dtype)
    return _Plan(config, tokenizer, sources, clip, fresh_head=found.format == "llava")


PLANNERS = {"bundle": _plan_bundle, "lisa": _plan_hf, "llava": _plan_hf}


def _check_memory(
    plan: _Plan, seg_id: int, dtype: torch.dtype, device: torch.device, path: Path
) -> None:
    with construction(dtype, torch.device("meta"), skip_init=True):
        skeleton = MineLisaModel(plan.config, seg_token_id=seg_id, vision_tower=None)
    needed = module_bytes(skeleton, skip_prefix="vision_tower." if plan.clip is not None else None)
    if plan.clip is not None:
        needed += module_bytes(plan.clip)
    name = next(k for k, v in DTYPES.items() if v == dtype)
    if name == "fp32":
        hint = f"choose --dtype bf16 or fp16 (about {needed / 2 / GIB:.1f} GiB)"
    else:
        hint = "use a GPU with more free memory, or a machine with more memory"
    check_fits(needed, device, f"{path} in {name}", hint)


def _copy_into(
    model: MineLisaModel,
    tensors: Mapping[str, torch.Tensor],
    source_names: Mapping[str, str],
    report: LoadReport,
    loaded: set[str],
) -> None:
    """Copy checkpoint tensors (under model names) into the model; unknown ones are
    reported under the name the checkpoint gave them."""
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in tensors.items():
            target = params.get(key)
            if target is None:
                report.unexpected.append(source_names[key])
                continue
            if target.shape != value.shape:
                _copy_grown_rows(key, target, value, report)
            else:
                target.copy_(value)
            loaded.add(key)
            report.loaded += 1


def _copy_grown_rows(
    key: str, target: torch.Tensor, value: torch.Tensor, report: LoadReport
) -> None:
    rows_only = target.dim() == value.dim() and target.shape[1:] == value.shape[1:]
    if not (rows_only and key.endswith(("embed_tokens.weight", "lm_head.weight"))):
        raise CheckpointError(
            f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, model {tuple(target.shape)}"
        )
    # Vocabulary grew by tokens the base checkpoint lacks ([SEG]): keep its rows,
    # start the new ones at the mean embedding.
    n = min(value.shape[0], target.shape[0])
    target[:n].copy_(value[:n])
    target[n:].copy_(value.float().mean(0, keepdim=True).to(target.dtype))
    report.fresh.append(f"{key}[{n}:]")


def _fill(model: MineLisaModel, plan: _Plan, report: LoadReport) -> set[str]:
    loaded: set[str] = set()
    for file, key_map in plan.sources:
        mapped: dict[str, torch.Tensor] = {}
        source_names: dict[str, str] = {}
        for key, value in read_weights(file).items():
            if key.endswith(RECOMPUTED_SUFFIX):
                report.ignored.append(key)
                continue
            new = key_map(key)
            if new is None:
                report.unexpected.append(key)
            else:
                mapped[new], source_names[new] = value, key
        _copy_into(model, mapped, source_names, report, loaded)
        del mapped
    return loaded


def load_model(
    path: str | Path,
    vision_tower: str | Path | None = None,
    sam_checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "fp32",
) -> LoadedModel:
    """Load a bundle, a LISA release or a base LLaVA + SAM checkpoint.

    Raises:
        CheckpointError: unreadable or incomplete files (named), a missing CLIP or SAM
            path, or a model that would not fit the device's free memory.
    """
    found = detect(path)
    target_dtype, device = torch_dtype(dtype), torch.device(device)
    report = LoadReport(format=found.format, path=str(found.path))
    plan = PLANNERS[found.format](
        found, target_dtype, vision_tower=vision_tower, sam_checkpoint=sam_checkpoint
    )
    if SEG_TOKEN not in plan.tokenizer.added_tokens:
        raise CheckpointError(f"{path}: the tokenizer has no {SEG_TOKEN} token (added_tokens.json)")
    seg_id = plan.tokenizer.token_to_id(SEG_TOKEN)
    _check_memory(plan, seg_id, target_dtype, device, found.path)
    with construction(target_dtype, device, skip_init=not plan.fresh_head):
        model = MineLisaModel(plan.config, seg_token_id=seg_id, vision_tower=plan.clip)
    # Built under the target default dtype: settle every buffer's dtype (SAM's
    # positional matrix stays fp32) and put a separately loaded CLIP tower on the device.
    model.to(device=device, dtype=target_dtype)
    loaded = _fill(model, plan, report)
    _check_complete(model, plan, loaded, report, found.path)
    return LoadedModel(model=model.eval(), tokenizer=plan.tokenizer, report=report)


def _check_complete(
    model: MineLisaModel, plan: _Plan, loaded: set[str], report: LoadReport, path: Path
) -> None:
    expected = set(model.state_dict())
    if plan.clip is not None:
        expected = {k for k in expected if not k.startswith("vision_tower.")}
    missing = sorted(expected - loaded)
    if plan.fresh_head:
        report.fresh += [k for k in missing if k.startswith("text_hidden_fcs.")]
        missing = [k for k in missing if not k.startswith("text_hidden_fcs.")]
    if missing:
        raise CheckpointError(
            f"{path}: {len(missing)} weights missing from the checkpoint: {_names(missing)}"
        )
    if report.unexpected:
        log.warning("unexpected keys in %s (not used): %s", path, _names(report.unexpected))
