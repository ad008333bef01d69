"""Loading MineLISA from local files, and writing the bundle the robot serves.

Three formats, detected from the directory:

* ``bundle``: this project's export (`minelisa.json`, `model.safetensors`,
  tokenizer files). Self-contained, CLIP tower included.
* ``lisa``: a LISA release such as xinlai/LISA-7B-v1 (`config.json`, tokenizer
  files, sharded `.bin` or `.safetensors` with an index). The CLIP tower is not
  inside; its config names a hub id, so a local directory must be given.
* ``llava``: a base LLaVA (no SAM, no `[SEG]` head) plus a SAM `.pth`, for
  training the segmentation head from scratch.

Nothing is downloaded. Pickled `.bin` shards load with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionModel
from transformers.initialization import no_init_weights

from .config import MineLisaConfig
from .modeling.lisa import MineLisaModel
from .modeling.sam import infer_sam_geometry
from .prompts import SEG_TOKEN
from .tokenization import LisaTokenizer

log = logging.getLogger(__name__)

BUNDLE_FILE = "minelisa.json"
BUNDLE_WEIGHTS = "model.safetensors"
BUNDLE_VERSION = 1

# LISA key prefix -> MineLisaModel prefix, most specific first.
LISA_PREFIXES = (
    ("model.mm_projector.", "mm_projector."),
    ("model.visual_model.", "visual_model."),
    ("model.text_hidden_fcs.", "text_hidden_fcs."),
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),  # LLaVA files that do carry CLIP
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
)
SAM_PTH_PREFIX = "visual_model."
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class CheckpointError(RuntimeError):
    """A model directory or file that cannot be loaded, with the reason."""


@dataclass
class LoadReport:
    format: str
    path: str
    loaded: int = 0
    ignored: list[str] = field(default_factory=list)  # recomputed buffers such as rotary inv_freq
    unexpected: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # parameters initialised here, not loaded

    def summary(self) -> str:
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
    model: MineLisaModel
    tokenizer: LisaTokenizer
    report: LoadReport


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}") from None


# -- weight files -------------------------------------------------------------
def weight_files(path: Path) -> list[Path]:
    """The weight files of a Hugging Face-style directory, shards in index order."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
            missing = [f for f in files if not (path / f).is_file()]
            if missing:
                raise CheckpointError(f"{index} lists shards that are not there: {', '.join(missing)}")
            return [path / f for f in files]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (path / single).is_file():
            return [path / single]
    raise CheckpointError(f"{path} holds no weights (no *.index.json, model.safetensors or pytorch_model.bin)")


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        # mmap: a 10 GB shard is paged in as it is copied, not read up front.
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated or foreign files surface here
        raise CheckpointError(f"cannot read weights from {file}: {exc}") from exc


def weight_shapes(files: list[Path]) -> dict[str, torch.Tensor]:
    """Key -> meta tensor of the right shape, without reading the data."""
    shapes: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            with safe_open(str(f), framework="pt") as handle:
                for k in handle.keys():
                    shapes[k] = torch.empty(handle.get_slice(k).get_shape(), device="meta")
        else:
            for k, v in read_weights(f).items():
                shapes[k] = torch.empty(v.shape, device="meta")
    return shapes


def map_lisa_key(key: str) -> str | None:
    for old, new in LISA_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


# -- format detection ---------------------------------------------------------
def detect_format(path: Path) -> str:
    if not path.exists():
        raise CheckpointError(f"model path does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"model path must be a directory, got a file: {path}")
    if (path / BUNDLE_FILE).is_file():
        return "bundle"
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(
            f"{path} is neither a MineLISA bundle ({BUNDLE_FILE}) nor a LISA/LLaVA directory (config.json)"
        )
    keys = weight_shapes(weight_files(path))
    if any(k.startswith("model.visual_model.") for k in keys):
        return "lisa"
    return "llava"


# -- loading ------------------------------------------------------------------
@contextlib.contextmanager
def construction(dtype: torch.dtype, device: torch.device, skip_init: bool):
    """Build parameters directly in the target dtype and device; skip random
    initialisation when every parameter will be overwritten by the checkpoint."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), (no_init_weights() if skip_init else contextlib.nullcontext()):
            yield
    finally:
        torch.set_default_dtype(previous)


def _load_clip(vision_tower: str | None, config: MineLisaConfig, dtype: torch.dtype) -> CLIPVisionModel:
    if not vision_tower or not Path(vision_tower).is_dir():
        named = f" (its config names {config.vision_tower!r}, a hub id)" if config.vision_tower else ""
        raise CheckpointError(
            "this checkpoint does not contain the CLIP vision tower"
            + named
            + ": pass --vision-tower DIR with a local copy of openai/clip-vit-large-patch14"
        )
    try:
        clip = CLIPVisionModel.from_pretrained(vision_tower, local_files_only=True, dtype=dtype)
    except Exception as exc:
        raise CheckpointError(f"cannot load the CLIP vision tower from {vision_tower}: {exc}") from exc
    vc = clip.config
    config.vision.update(
        hidden_size=vc.hidden_size,
        intermediate_size=vc.intermediate_size,
        num_hidden_layers=vc.num_hidden_layers,
        num_attention_heads=vc.num_attention_heads,
        image_size=vc.image_size,
        patch_size=vc.patch_size,
        projection_dim=vc.projection_dim,
        hidden_act=vc.hidden_act,
        layer_norm_eps=vc.layer_norm_eps,
    )
    config.vision_tower = str(vision_tower)
    return clip


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
            else:
                target.copy_(value)
            loaded.add(key)
            report.loaded += 1


def load_model(
    path: str | Path,
    vision_tower: str | Path | None = None,
    sam_checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "fp32",
) -> LoadedModel:
    """Load any supported format; missing keys fail by name, unexpected ones are reported."""
    path = Path(path)
    torch_dtype = resolve_dtype(dtype)
    device = torch.device(device)
    fmt = detect_format(path)
    report = LoadReport(format=fmt, path=str(path))
    try:
        tokenizer = LisaTokenizer.from_dir(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(str(exc)) from exc

    clip: CLIPVisionModel | None = None
    if fmt == "bundle":
        meta = json.loads((path / BUNDLE_FILE).read_text())
        if meta.get("version") != BUNDLE_VERSION:
            raise CheckpointError(f"{path}: bundle version {meta.get('version')} is not {BUNDLE_VERSION}")
        config = MineLisaConfig.from_dict(meta["config"])
        files = [path / BUNDLE_WEIGHTS]
        if not files[0].is_file():
            raise CheckpointError(f"{path} is a bundle without {BUNDLE_WEIGHTS}")
        key_map = None  # the bundle uses the model's own names
        extra_files: list[tuple[Path, str]] = []
    else:
        files = weight_files(path)
        shapes = weight_shapes(files)
        lisa_cfg = json.loads((path / "config.json").read_text())
        extra_files = []
        if fmt == "lisa":
            sam_cfg = infer_sam_geometry(shapes, prefix="model.visual_model.")
        else:
            if sam_checkpoint is None:
                raise CheckpointError(
                    f"{path} is a base LLaVA checkpoint without SAM: pass a SAM .pth (e.g. sam_vit_h_4b8939.pth)"
                )
            sam_file = Path(sam_checkpoint)
            if not sam_file.is_file():
                raise CheckpointError(f"SAM checkpoint not found: {sam_file}")
            sam_cfg = infer_sam_geometry(read_weights(sam_file))
            extra_files = [(sam_file, SAM_PTH_PREFIX)]
        try:
            config = MineLisaConfig.from_lisa_config(lisa_cfg, sam=sam_cfg)
        except ValueError as exc:
            raise CheckpointError(f"{path / 'config.json'}: {exc}") from exc
        if SEG_TOKEN not in tokenizer.added_tokens:
            tokenizer.added_tokens[SEG_TOKEN] = len(tokenizer)
            tokenizer = LisaTokenizer(tokenizer.model_file, tokenizer.added_tokens)
        config.llm["vocab_size"] = max(int(config.llm.get("vocab_size", 0)), len(tokenizer))
        if not any(k.startswith("model.vision_tower.") for k in shapes):
            clip = _load_clip(str(vision_tower) if vision_tower else config.vision_tower, config, torch_dtype)
        key_map = map_lisa_key

    if SEG_TOKEN not in tokenizer.added_tokens:
        raise CheckpointError(f"{path}: the tokenizer has no {SEG_TOKEN} token (added_tokens.json)")
    seg_id = tokenizer.token_to_id(SEG_TOKEN)
    fresh_head = fmt == "llava"
    with construction(torch_dtype, device, skip_init=not fresh_head):
        model = MineLisaModel(config, seg_token_id=seg_id, vision_tower=clip)
    # Built under the target default dtype: settle every buffer's dtype (SAM's
    # positional matrix stays fp32) and put a separately loaded CLIP tower on the device.
    model.to(device=device, dtype=torch_dtype)

    loaded: set[str] = set()
    sources = [(f, None) for f in files] + extra_files
    for file, prefix in sources:
        raw = read_weights(file)
        mapped: dict[str, torch.Tensor] = {}
        source_names: dict[str, str] = {}
        for key, value in raw.items():
            if key.endswith("rotary_emb.inv_freq"):
                report.ignored.append(key)
                continue
            if prefix:
                new: str | None = prefix + key
            else:
                new = key_map(key) if key_map else key
            if new is None:
                report.unexpected.append(key)
            else:
                mapped[new] = value
                source_names[new] = key
        _copy_into(model, mapped, source_names, report, loaded)
        del raw, mapped

    expected = set(model.state_dict())
    if clip is not None:
        expected = {k for k in expected if not k.startswith("vision_tower.")}
    missing = sorted(expected - loaded)
    if fresh_head:
        report.fresh += [k for k in missing if k.startswith("text_hidden_fcs.")]
        missing = [k for k in missing if not k.startswith("text_hidden_fcs.")]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} weights missing from the checkpoint: {_names(missing)}")
    if report.unexpected:
        log.warning("unexpected keys in %s (not used): %s", path, _names(report.unexpected))
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, report=report)


# -- bundle -------------------------------------------------------------------
def save_bundle(
    model: MineLisaModel, tokenizer: LisaTokenizer, out_dir: str | Path, card: dict | None = None
) -> Path:
    """Write a self-contained bundle. The new bundle replaces `out_dir` only once it
    is complete, so a failed write leaves any previous bundle in place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = {"format": "minelisa-bundle", "version": BUNDLE_VERSION, "config": model.config.to_dict()}
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / BUNDLE_WEIGHTS), metadata={"format": "pt"})
        tokenizer.save(tmp)
        if card is not None:
            (tmp / "model_card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def iter_lisa_state_dict(model: MineLisaModel) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's weights under LISA's key names (no CLIP tower), for writing LISA-format files."""
    reverse = [(new, old) for old, new in LISA_PREFIXES if not old.startswith("model.vision_tower.")]
    for key, value in model.state_dict().items():
        if key.startswith("vision_tower."):
            continue
        for new, old in reverse:
            if key.startswith(new):
                yield old + key[len(new) :], value
                break
