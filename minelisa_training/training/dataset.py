"""MUSeg samples for training and validation, read with the project's MUSeg reader."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import museg
from .config import DataSection
from .data import EncodedExample, Example, ExampleEncoder

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class DataError(ValueError):
    """Training data that cannot be used (missing folder, empty split...)."""


@dataclass
class Skipped:
    """A sample whose files could not be read; the trainer counts it and moves on."""

    path: str
    reason: str


@dataclass
class SplitSamples:
    train: list[museg.Sample]
    val: list[museg.Sample]
    class_map: museg.ClassMap
    description: str


def _subset(samples: list[museg.Sample], limit: int | None, seed: int) -> list[museg.Sample]:
    if limit is None or limit >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
    return [samples[i] for i in keep]


def load_split_samples(data: DataSection, progress: bool = True) -> SplitSamples:
    """Splits the images and expands them into (image, class) samples, as the paper."""
    if data.root is None:
        raise DataError("data.root is not set (a MUSeg folder, or one written by `minelisa synth`)")
    root = Path(data.root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a directory")
    try:
        class_map = museg.load_class_map(data.classes)
        spec = museg.SplitSpec(
            scheme=data.split, val_fraction=data.val_fraction, seed=data.split_seed, val_mines=tuple(data.val_mines)
        )
        splits = museg.make_splits(root, spec)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{root}: {exc}") from exc
    out = {}
    for name in ("train", "val"):
        records = splits.get(name, [])
        if not records:
            raise DataError(f"{root}: the {name} split ({spec.describe()}) has no images")
        samples = museg.expand_samples(
            records,
            class_map,
            templates=tuple(data.templates),
            negative_fraction=data.negative_fraction,
            seed=data.split_seed,
            progress=progress,
        )
        if not samples:
            raise DataError(f"{root}: the {name} split has images but no labelled object to train on")
        limit = data.max_train_samples if name == "train" else data.max_val_samples
        out[name] = _subset(samples, limit, data.split_seed)
    return SplitSamples(out["train"], out["val"], class_map, spec.describe())


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
        """Augmentation depends on (seed, epoch, index) only, so a resumed run sees the same images."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def load_example(self, index: int) -> Example:
        sample = self.samples[index]
        item = museg.load_sample(sample, self.class_map)
        image = item.image
        if self.augment is not None:
            image = self.augment(image, np.random.default_rng([self.seed, self.epoch, index]))
        return Example(
            key=sample.image_id, image=image, instruction=item.instruction, mask=item.mask, ignore=item.ignore,
            class_id=item.class_id,
        )

    def __getitem__(self, index: int) -> EncodedExample | Skipped:
        try:
            return self.encoder(self.load_example(index))
        except museg.SampleLoadError as exc:
            return Skipped(str(self.samples[index].record.image_path), str(exc))
