"""MUSeg samples for training and validation.

The splits come from ``museg.build_samples``, the builder ``minelisa eval`` uses, with
the options of the recipe's ``data`` section (``split_options``), so a training run and
an evaluation with the same values see the same samples. ``SampleDataset`` reads each
sample into a ``museg.LoadedSample`` (the ``Example`` the encoder takes), augments its
image and encodes it; a sample whose files cannot be read becomes a ``Skipped`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import museg
from ..errors import DataError, SampleLoadError
from ..skips import SkipLog, SkippedFile
from .config import DataSection
from .data import EncodedExample, Example, ExampleEncoder

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# The trainer's name for the record of a sample whose files could not be read.
Skipped = SkippedFile

__all__ = [
    "Augment",
    "DataError",
    "SampleDataset",
    "Skipped",
    "SplitSamples",
    "load_split_samples",
    "split_options",
]


@dataclass
class SplitSamples:
    """The train and val samples of a recipe, their class map and split description."""

    train: list[museg.Sample]
    val: list[museg.Sample]
    class_map: museg.ClassMap
    description: str
    skipped: SkipLog = field(default_factory=SkipLog)  # label maps that could not be read


def split_options(data: DataSection, split: str) -> museg.SplitOptions:
    """The ``museg.SplitOptions`` of the ``train`` or ``val`` split of a data section
    (``max_<split>_images`` -> ``limit_images``, ``max_<split>_samples`` -> ``limit_samples``)."""
    images = getattr(data, f"max_{split}_images")
    samples = getattr(data, f"max_{split}_samples")
    for key, value in ((f"max_{split}_images", images), (f"max_{split}_samples", samples)):
        if value is not None and value < 1:
            raise DataError(f"data.{key} must be >= 1, got {value}")
    return museg.SplitOptions(
        scheme=data.split,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        group_fields=data.group_fields,
        val_mines=tuple(data.val_mines),
        classes=data.classes,
        negative_fraction=data.negative_fraction,
        templates=tuple(data.templates),
        limit_images=images,
        limit_samples=samples,
    )


def _build(root: Path, data: DataSection, split: str, progress: bool) -> museg.SampleSet:
    try:
        built = museg.build_samples(root, split, split_options(data, split), progress=progress)
    except DataError:
        raise
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{root}: {exc}") from exc
    if not built.samples:
        raise DataError(f"{root}: the {split} split has images but no labelled object to train on")
    return built


def load_split_samples(data: DataSection, progress: bool = True) -> SplitSamples:
    """Splits the images and expands them into (image, class) samples, as the paper."""
    if data.root is None:
        raise DataError("data.root is not set (a MUSeg folder, or one written by `minelisa synth`)")
    root = Path(data.root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a directory")
    train = _build(root, data, "train", progress)
    val = _build(root, data, "val", progress)
    skipped = SkipLog(train.skipped.entries + val.skipped.entries)
    return SplitSamples(train.samples, val.samples, train.class_map, train.scheme, skipped)


class SampleDataset(torch.utils.data.Dataset):
    """Loads, optionally augments and encodes one sample; unreadable files become ``Skipped``."""

    def __init__(
        self,
        samples: list[museg.Sample],
        class_map: museg.ClassMap,
        encoder: ExampleEncoder,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.class_map = class_map
        self.encoder = encoder
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentation depends on (seed, epoch, index) only: a resumed run sees the same images."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def load_example(self, index: int) -> Example:
        """The sample read from its files (``SampleLoadError`` names a bad one), augmented."""
        item = museg.load_sample(self.samples[index], self.class_map)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            item.image = self.augment(item.image, rng)
        return item

    def __getitem__(self, index: int) -> EncodedExample | Skipped:
        try:
            return self.encoder(self.load_example(index))
        except SampleLoadError as exc:
            return Skipped.from_error(exc)
