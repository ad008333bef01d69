"""``write_dataset``: synthetic scenes written in the raw MUSeg layout.

Every path comes from ``museg.Layout``, the object the reader uses, so what is
written here is what the reader finds. Frames come in capture groups inside mines
(ids in MUSeg's format from ``make_ids``); the official split is capture-group
disjoint and written last, as ``Experiment/DatasetSplit.zip`` (atomically: a dataset
with a split file is complete), after the camera's ``Experiment/intrinsics.json``.
Sequences (``sequence``), when asked for, come after the still images, with their
manifest ``Experiment/sequences.json``; their frames are in the split too, each
sequence on one side. Everything is drawn from ``numpy.random.default_rng`` streams
keyed by (seed, mine, group, frame) or (seed, sequence, frame) and written with fixed
encoder settings and zip timestamps: the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from .. import museg
from ..fileio import atomic_write
from .camera import intrinsics_json
from .config import SynthConfig
from .objects import CLASS_PRESENCE
from .scene import Scene, mine_style, render_scene
from .sequence import manifest, render_sequences, sequence_ids

BACKGROUND_SHARE = 0.05  # frames with no object at all
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps -> identical bytes
LABELME_VERSION = "5.2.1"


def voc_palette() -> np.ndarray:
    """Labelme's colour map (PASCAL VOC's): uint8 [256, 3] RGB."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def make_ids(cfg: SynthConfig) -> list[tuple[int, int, str]]:
    """(mine, capture group, id) for every image, in MUSeg's id format."""
    rng = np.random.default_rng([cfg.seed, 1])
    per_mine = [
        cfg.images // cfg.mines + (1 if m < cfg.images % cfg.mines else 0) for m in range(cfg.mines)
    ]
    out = []
    for m, n in enumerate(per_mine, start=1):
        frame, group = 0, 0
        while frame < n:
            group += 1
            size = min(int(rng.integers(2, 7)), n - frame)
            day = int(rng.integers(1, 29))
            hour = int(rng.integers(7, 20))
            minute = int(rng.integers(60))
            for k in range(size):
                frame += 1
                stamp = f"2405{day:02d}{hour:02d}{minute:02d}{(k * 7) % 60:02d}"
                out.append((m, group, f"{m:02d}-01-{group:02d}-{frame:04d}-{stamp}-08-99"))
    return out


def _zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def _write(path: Path, array: np.ndarray, params: list[int] | None = None) -> None:
    """Encode ``array`` (BGR or one channel) in the format of ``path``'s suffix."""
    ok, buf = cv2.imencode(path.suffix, array, params or [])
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def _background_flags(cfg: SynthConfig, n: int) -> np.ndarray:
    """Which frames are all background (at least one once there are 8 frames)."""
    rng = np.random.default_rng([cfg.seed, 2])
    background = rng.random(n) < BACKGROUND_SHARE
    if n >= 8 and not background.any():
        background[int(rng.integers(n))] = True
    return background


def _write_image(
    rec: museg.ImageRecord, scene: Scene, cfg: SynthConfig, palette: np.ndarray
) -> None:
    """The five files of one image: RGB, depth, label, colour label, polygons."""
    _write(rec.image_path, scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    _write(rec.depth_path, scene.depth)
    _write(rec.label_path, scene.label)
    _write(rec.color_path, palette[scene.label][..., ::-1])
    labelme = {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": scene.shapes,
        "imagePath": Path(os.path.relpath(rec.image_path, rec.polygons_path.parent)).as_posix(),
        "imageData": None,
        "imageHeight": cfg.height,
        "imageWidth": cfg.width,
    }
    rec.polygons_path.write_text(json.dumps(labelme, indent=2), encoding="utf-8")


def _write_stills(
    layout: museg.Layout,
    cfg: SynthConfig,
    ids: list[tuple[int, int, str]],
    palette: np.ndarray,
    progress: bool,
) -> np.ndarray:
    """The still images; returns which ids are all background."""
    from tqdm import tqdm

    background = _background_flags(cfg, len(ids))
    class_map = cfg.class_map
    # Each capture group features one class in turn, so that every class shows up
    # once there are 15 groups, whatever the random presence draws.
    group_index = {key: i for i, key in enumerate(dict.fromkeys((m, g) for m, g, _ in ids))}
    classes = list(CLASS_PRESENCE)
    frames = tqdm(
        list(zip(ids, background)), desc="synthesising", unit="img", disable=not progress or not ids
    )
    for (mine, group, image_id), all_bg in frames:
        frame = int(image_id.split("-")[3])
        scene = render_scene(
            np.random.default_rng([cfg.seed, 3, mine, group]),
            np.random.default_rng([cfg.seed, 4, mine, frame]),
            cfg.width,
            cfg.height,
            mine_style(cfg.seed, mine),
            class_map,
            bool(all_bg),
            featured=classes[group_index[mine, group] % len(classes)],
        )
        _write_image(layout.record(image_id, mine), scene, cfg, palette)
    return background


def _write_sequences(
    layout: museg.Layout, cfg: SynthConfig, palette: np.ndarray, progress: bool
) -> list[museg.ImageRecord]:
    """The sequences' frames and their manifest; returns the frames' records."""
    from tqdm import tqdm

    records = []
    total = cfg.sequences * cfg.frames
    frames = tqdm(
        render_sequences(cfg, cfg.class_map),
        total=total,
        desc="sequences",
        unit="frame",
        disable=not progress,
    )
    for mine, frame_id, scene in frames:
        records.append(layout.record(frame_id, mine))
        _write_image(records[-1], scene, cfg, palette)
    atomic_write(layout.sequences_path, json.dumps(manifest(cfg), indent=2) + "\n")
    return records


def write_dataset(out: str | Path, cfg: SynthConfig = SynthConfig(), progress: bool = True) -> dict:
    """Write ``cfg.images`` scenes (and ``cfg.sequences`` sequences) under ``out`` in the raw
    MUSeg layout; returns a summary (ids per split, images per mine, all-background ids,
    and the sequences' frame ids when there are any)."""
    layout = museg.Layout(Path(out))
    ids = make_ids(cfg)
    palette = voc_palette()
    for m in range(1, cfg.mines + 1):
        for folder in (layout.image_dir(m), layout.depth_dir(m), layout.label_dir(m)):
            folder.mkdir(parents=True, exist_ok=True)
    background = _write_stills(layout, cfg, ids, palette, progress)
    sequence_records = _write_sequences(layout, cfg, palette, progress) if cfg.sequences else []

    camera = json.dumps(intrinsics_json(cfg.width, cfg.height), indent=2) + "\n"
    layout.experiment_dir.mkdir(parents=True, exist_ok=True)
    layout.intrinsics_path.write_text(camera, encoding="utf-8")
    records = [layout.record(i, m) for m, _, i in ids] + sequence_records
    split = museg.group_split(records, cfg.val_fraction, cfg.seed)
    names = museg.SPLIT_NAMES
    texts = {f"{name}.txt": "".join(f"{r.image_id}\n" for r in split[name]) for name in names}
    atomic_write(layout.split_zip, _zip_bytes(texts))
    summary = {
        "root": str(layout.root),
        "images": len(ids),
        "class_order": cfg.class_order.upper(),
        "per_mine": {
            museg.mine_key(m): sum(1 for mm, _, _ in ids if mm == m)
            for m in range(1, cfg.mines + 1)
        },
        "split": {name: [r.image_id for r in split[name]] for name in names},
        "all_background": [i for (_, _, i), bg in zip(ids, background) if bg],
    }
    if cfg.sequences:
        summary["sequences"] = {key: frames for _, key, frames in sequence_ids(cfg)}
    return summary
