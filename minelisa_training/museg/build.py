"""The one way evaluation and training turn a MUSeg folder into samples.

``minelisa eval``/``score`` (``commands/data_args.py``) and training
(``training/dataset.py``) both call ``build_samples`` with a ``SplitOptions``, so the
same option values give the same samples in both:

=====================  ==========================  =============================
SplitOptions           eval/score flag             training recipe key (data.)
=====================  ==========================  =============================
scheme                 --split-scheme              split
val_fraction           --val-fraction              val_fraction
split_seed             --split-seed                split_seed
group_fields           --group-fields              group_fields
val_mines              --val-mines                 val_mines
classes                --classes                   classes
negative_fraction      --negatives                 negative_fraction
templates              (the paper's template)      templates
limit_images           --limit-images (--limit)    max_train_images / max_val_images
limit_samples          --limit-samples             max_train_samples / max_val_samples
=====================  ==========================  =============================

Order of operations: split the images; keep the first ``limit_images`` of the split
(split order); expand them into samples (negatives drawn with ``split_seed``); keep a
``split_seed`` random subset of ``limit_samples`` samples, in sample order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, InvalidInputError
from ..skips import SkipLog
from .classes import ClassMap, load_class_map
from .layout import GROUP_FIELDS
from .samples import PAPER_TEMPLATE, Sample, expand_samples
from .splits import SCHEMES, SplitSpec, read_split


@dataclass(frozen=True)
class SplitOptions:
    """Which samples of a MUSeg folder to use; see the module docstring for the names
    these options have on the command line and in a training recipe."""

    scheme: str = "official"  # official | groups | mines
    val_fraction: float = 0.2  # groups: share of images in val
    split_seed: int = 0  # groups split, negatives, template draws, limit_samples
    group_fields: int = GROUP_FIELDS  # groups: leading id fields that name a capture group
    val_mines: tuple[str, ...] = ()  # mines: held-out mines ("03" or "3")
    classes: str | None = None  # A (None), B or a classes file
    negative_fraction: float = 0.0  # extra samples naming a class absent from their image
    templates: tuple[str, ...] = (PAPER_TEMPLATE,)
    limit_images: int | None = None  # the first N images of the split, in split order
    limit_samples: int | None = None  # a split_seed random subset of N expanded samples

    def __post_init__(self) -> None:
        object.__setattr__(self, "val_mines", tuple(str(m) for m in self.val_mines))
        object.__setattr__(self, "templates", tuple(self.templates))
        if self.scheme not in SCHEMES:
            raise InvalidInputError(f"unknown split scheme {self.scheme!r} ({', '.join(SCHEMES)})")
        for name in ("limit_images", "limit_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")

    @property
    def spec(self) -> SplitSpec:
        """The image split these options describe."""
        return SplitSpec(
            self.scheme, self.val_fraction, self.split_seed, self.val_mines, self.group_fields
        )


@dataclass
class SampleSet:
    """The samples of one split, with what they were made from."""

    split: str  # train, val or all
    samples: list[Sample]
    class_map: ClassMap
    scheme: str  # SplitSpec.describe()
    n_images: int  # images the samples come from (after limit_images)
    skipped: SkipLog = field(default_factory=SkipLog)  # unreadable label maps

    def describe(self) -> dict:
        """``{"name", "scheme", "n_images"}``: the ``split`` entry of a report."""
        return {"name": self.split, "scheme": self.scheme, "n_images": self.n_images}


def random_subset(samples: Sequence[Sample], limit: int | None, seed: int) -> list[Sample]:
    """``limit`` samples drawn with ``seed``, in their original order (all when fewer)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
    return [samples[i] for i in keep]


def build_samples(
    root: str | Path, split: str, options: SplitOptions = SplitOptions(), *, progress: bool = True
) -> SampleSet:
    """The samples of ``split`` (train, val or all) of the MUSeg folder ``root``.

    Raises ``DataError`` when the split has no images, ``FileNotFoundError`` for a
    missing folder, official split or classes file, ``ValueError`` for bad options.
    """
    class_map = load_class_map(options.classes)
    spec = options.spec
    records = read_split(root, split, spec)
    if options.limit_images is not None:
        records = records[: options.limit_images]
    if not records:
        raise DataError(f"{root}: the {split} split ({spec.describe()}) has no images")
    skipped = SkipLog()
    samples = expand_samples(
        records,
        class_map,
        templates=options.templates,
        negative_fraction=options.negative_fraction,
        seed=options.split_seed,
        skipped=skipped,
        progress=progress,
    )
    samples = random_subset(samples, options.limit_samples, options.split_seed)
    return SampleSet(split, samples, class_map, spec.describe(), len(records), skipped)
