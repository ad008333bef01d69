"""Samples: one instruction about one class of one image, and the loaded sample record.

The paper turns each image into one sample per class present in its label map
(one instruction <-> one mask). ``expand_samples`` does that, optionally adding
"negative" samples (a class absent from the image, empty target) so that the
no-target rule is trained and measured. ``load_sample`` reads a sample's files into
a ``LoadedSample``, the record training encodes (``training.data.Example``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, SampleLoadError
from ..skips import SkipLog
from .classes import ORDER_A, ClassMap
from .layout import ImageRecord
from .readers import class_presence, ignore_mask, load_image, load_label

# The paper's template comes first and is the evaluation protocol; the others give
# training some variety of phrasing (pass them with ``templates=``).
PAPER_TEMPLATE = "Please segment the {class_name} in this image."
INSTRUCTION_TEMPLATES = (
    PAPER_TEMPLATE,
    "Can you segment the {class_name} in this image?",
    "What is the {class_name} in this image? Please output segmentation mask.",
    "Where is the {class_name} in this picture? Please output the segmentation mask.",
    "Segment the {class_name}.",
)


@dataclass(frozen=True)
class Sample:
    """One instruction on one image with one target class (empty target when negative)."""

    record: ImageRecord
    class_id: int
    class_name: str
    instruction: str
    negative: bool = False

    @property
    def image_id(self) -> str:
        return self.record.image_id

    @property
    def key(self) -> str:
        """``<image id>__<class id>``: the file stem of this sample's mask."""
        return f"{self.record.image_id}__{self.class_id}"


def instruction_name(class_name: str) -> str:
    """The class name as an instruction writes it ("tools & materials" -> "tools and materials")."""
    return re.sub(r"\s+", " ", class_name.replace("&", "and")).strip()


def _check_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise DataError("no instruction templates")
    for t in templates:
        if "{class_name}" not in t:
            raise DataError(f"instruction template {t!r} lacks '{{class_name}}'")


def _presence_by_id(
    records: Sequence[ImageRecord],
    class_map: ClassMap,
    skipped: SkipLog,
    presence: dict[str, np.ndarray] | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """id -> bool [num_classes] of the classes in each readable label map."""
    from tqdm import tqdm

    out: dict[str, np.ndarray] = {}
    bar = tqdm(
        records, desc="reading label maps", unit="img", disable=not progress or presence is not None
    )
    for rec in bar:
        if presence is not None and rec.image_id in presence:
            out[rec.image_id] = np.asarray(presence[rec.image_id], dtype=bool)
            continue
        try:
            out[rec.image_id] = class_presence(load_label(rec.label_path), class_map)
        except SampleLoadError as exc:
            skipped.add_error(exc)
    return out


def _sample_pairs(
    kept: Sequence[ImageRecord],
    present_by_id: dict[str, np.ndarray],
    class_map: ClassMap,
    negative_fraction: float,
    rng: np.random.Generator,
) -> list[tuple[int, int, bool]]:
    """(record index, class id, negative) of every sample, by image then class id."""
    fg = np.asarray(class_map.foreground_ids)
    pairs: list[tuple[int, int, bool]] = []
    absent: list[tuple[int, int]] = []
    for i, rec in enumerate(kept):
        present = present_by_id[rec.image_id][fg]
        pairs.extend((i, int(c), False) for c in fg[present])
        absent.extend((i, int(c)) for c in fg[~present])
    n_neg = min(len(absent), int(round(negative_fraction * len(pairs))))
    if n_neg:
        chosen = rng.choice(len(absent), size=n_neg, replace=False)
        pairs.extend((absent[j][0], absent[j][1], True) for j in chosen)
    pairs.sort(key=lambda p: (p[0], p[1]))
    return pairs


def expand_samples(
    records: Sequence[ImageRecord],
    class_map: ClassMap = ORDER_A,
    *,
    templates: Sequence[str] = (PAPER_TEMPLATE,),
    negative_fraction: float = 0.0,
    seed: int = 0,
    skipped: SkipLog | None = None,
    presence: dict[str, np.ndarray] | None = None,
    progress: bool = True,
) -> list[Sample]:
    """One sample per (image, class present in its label map), as the paper does.

    - ``templates``: with one template (the default, the paper's) every sample uses
      it; with several, each sample draws one with ``seed``.
    - ``negative_fraction``: adds ``round(f * n_positive)`` samples of classes absent
      from their image (empty target), drawn with ``seed`` from all absent pairs.
    - Images whose label map cannot be read are skipped and logged in ``skipped``.
    - ``presence`` (id -> bool [num_classes]) skips reading the label maps.

    Samples of one image are contiguous, in class-id order, images in input order.
    """
    _check_templates(templates)
    if negative_fraction < 0:
        raise DataError(f"negative_fraction must be >= 0, got {negative_fraction}")
    skipped = skipped if skipped is not None else SkipLog()
    rng = np.random.default_rng(seed)
    present_by_id = _presence_by_id(records, class_map, skipped, presence, progress)
    kept = [r for r in records if r.image_id in present_by_id]
    samples = []
    for i, cid, negative in _sample_pairs(kept, present_by_id, class_map, negative_fraction, rng):
        if len(templates) == 1:
            template = templates[0]
        else:
            template = templates[int(rng.integers(len(templates)))]
        name = class_map.name(cid)
        instruction = template.format(class_name=instruction_name(name))
        samples.append(Sample(kept[i], cid, name, instruction, negative))
    return samples


@dataclass
class LoadedSample:
    """One instruction about one image with its target at the image's size: what
    ``load_sample`` returns and what training augments and encodes
    (``training.data.Example`` is this class).

    ``key`` names the image (the MUSeg image id): the samples of one image share it,
    and it keys the training embedding cache (``Sample.key`` instead names the mask
    file of one sample). ``image`` RGB uint8 [H, W, 3]; ``mask`` bool [H, W] (the
    target class; all False for a negative); ``ignore`` bool [H, W] or None (label 255
    or out-of-range values, left out of losses and metrics); ``sample`` the MUSeg
    sample it was read from (None for an example built by hand).
    """

    key: str
    image: np.ndarray
    instruction: str
    mask: np.ndarray
    ignore: np.ndarray | None = None
    class_id: int = -1
    sample: Sample | None = None


def target_masks(
    label: np.ndarray, class_id: int, class_map: ClassMap
) -> tuple[np.ndarray, np.ndarray]:
    """(target mask, ignore mask) of one class in a label map."""
    return label == class_id, ignore_mask(label, class_map)


def load_image_and_label(record: ImageRecord) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], label uint8 [H, W]) of one image, sizes checked."""
    image = load_image(record.image_path)
    label = load_label(record.label_path)
    if label.shape != image.shape[:2]:
        raise SampleLoadError(
            record.label_path,
            f"label size {label.shape[1]}x{label.shape[0]} differs from image size "
            f"{image.shape[1]}x{image.shape[0]}",
        )
    return image, label


def load_sample(sample: Sample, class_map: ClassMap = ORDER_A) -> LoadedSample:
    """Read the image and label map of ``sample``; ``SampleLoadError`` names a bad file.

    Typical training loop::

        for s in samples:
            try:
                item = load_sample(s, class_map)
            except SampleLoadError as exc:
                skipped.add_error(exc)
                continue
    """
    image, label = load_image_and_label(sample.record)
    mask, ignore = target_masks(label, sample.class_id, class_map)
    return LoadedSample(
        sample.image_id, image, sample.instruction, mask, ignore, sample.class_id, sample
    )
