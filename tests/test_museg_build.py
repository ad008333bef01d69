"""The one split builder (museg.build_samples) shared by evaluation and training, and the
sample records training reads (museg.LoadedSample = training.data.Example)."""

import argparse
import zipfile

import numpy as np
import pytest

from minelisa_training import museg
from minelisa_training.commands.data_args import add_data_arguments, load_samples
from minelisa_training.errors import InvalidInputError
from minelisa_training.training.config import DataSection
from minelisa_training.training.data import Example
from minelisa_training.training.dataset import (
    DataError,
    SampleDataset,
    Skipped,
    load_split_samples,
)


def _eval_args(*argv):
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    return parser.parse_args(list(argv))


def test_training_and_eval_build_the_same_samples(synth_data):  # noqa: F811
    root, _ = synth_data
    data = DataSection(
        root=str(root),
        split="groups",
        val_fraction=0.3,
        split_seed=4,
        group_fields=2,
        negative_fraction=0.5,
        max_train_images=20,
        max_train_samples=30,
        max_val_images=9,
        max_val_samples=12,
    )
    splits = load_split_samples(data, progress=False)
    common = [
        "--data",
        str(root),
        "--split-scheme",
        "groups",
        "--val-fraction",
        "0.3",
        "--split-seed",
        "4",
        "--group-fields",
        "2",
        "--negatives",
        "0.5",
    ]
    for name, split_samples, images, n in (
        ("train", splits.train, 20, 30),
        ("val", splits.val, 9, 12),
    ):
        args = _eval_args(
            *common, "--split", name, "--limit-images", str(images), "--limit-samples", str(n)
        )
        samples, class_map, split, skipped = load_samples(args, progress=False)
        assert samples == split_samples and len(samples) == n
        assert class_map is splits.class_map is museg.ORDER_A and not len(skipped)
        assert split == {"name": name, "scheme": splits.description, "n_images": images}
        # limit_images: the first N images in split order, expanded (negatives drawn with the
        # split seed); limit_samples: a seeded subset of those samples, in their order.
        spec = museg.SplitSpec("groups", 0.3, seed=4, group_fields=2)
        first = museg.read_split(root, name, spec)[:images]
        full = museg.expand_samples(first, negative_fraction=0.5, seed=4, progress=False)
        index = [full.index(s) for s in samples]
        assert index == sorted(index) and len(full) > n and any(s.negative for s in full)
    # --limit is the old spelling of --limit-images; a recipe without subsets takes all.
    old = _eval_args("--data", str(root), "--limit", "3")
    assert old.limit_images == 3 and old.limit_samples is None
    everything = load_split_samples(DataSection(root=str(root)), progress=False)
    assert everything.val == load_samples(_eval_args("--data", str(root)), progress=False)[0]


def test_split_options_are_checked(synth_copy):  # noqa: F811
    root = synth_copy
    with pytest.raises(InvalidInputError, match="--limit-samples must be >= 1"):
        load_samples(_eval_args("--data", str(root), "--limit-samples", "0"), progress=False)
    with pytest.raises(DataError, match="data.max_val_images must be >= 1"):
        load_split_samples(DataSection(root=str(root), max_val_images=0), progress=False)
    with pytest.raises(InvalidInputError, match="limit_images"):
        museg.SplitOptions(limit_images=0)
    with pytest.raises(InvalidInputError, match="split scheme"):
        museg.SplitOptions(scheme="random")
    # An official val split whose ids have no image is empty: a DataError naming the split.
    with zipfile.ZipFile(root / "Experiment" / "DatasetSplit.zip", "w") as zf:
        zf.writestr("train.txt", "\n".join(museg.scan(root)) + "\n")
        zf.writestr("val.txt", "01-01-99-0001-240501000000-08-99\n")
    with pytest.raises(DataError, match="the val split \\(official\\) has no images"):
        museg.build_samples(root, "val", progress=False)
    assert len(museg.build_samples(root, "train", progress=False).samples) > 0


def test_sample_dataset_yields_loaded_samples_or_skipped(synth_copy):  # noqa: F811
    samples = museg.expand_samples(museg.read_split(synth_copy, "all")[:4], progress=False)
    darken = lambda image, rng: image // 2  # noqa: E731
    dataset = SampleDataset(samples, museg.ORDER_A, encoder=lambda example: example, augment=darken)
    item = dataset[0]
    assert isinstance(item, museg.LoadedSample) and Example is museg.LoadedSample
    plain = museg.load_sample(samples[0])
    assert item.key == samples[0].image_id and item.sample == samples[0]
    np.testing.assert_array_equal(item.image, plain.image // 2)
    np.testing.assert_array_equal(item.mask, plain.mask)
    assert item.instruction == samples[0].instruction and item.class_id == samples[0].class_id
    samples[-1].record.label_path.unlink()
    skipped = dataset[len(samples) - 1]
    assert isinstance(skipped, Skipped) and isinstance(skipped, museg.SkippedFile)
    assert skipped == museg.SkippedFile(str(samples[-1].record.label_path), "file is missing")
