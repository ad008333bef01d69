"""MUSeg reader: raw layout, class maps, splits, sample expansion and `museg check`.

The raw release layout (MUSeg, Scientific Data 2025: ``ROOT/NN-Mine/{Image,Depth,Label}``
and ``ROOT/Experiment/``) is spelled out once, in ``layout.Layout``.

Ids look like ``01-01-01-0014-240523104754-08-99``. The first three fields name
the mine, roadway and capture group; frames of one capture group are near
duplicates, so every split this package makes keeps a group on one side.

Modules: ``classes`` (class maps), ``layout`` (where files live, ``scan``),
``splits`` (official / groups / mines), ``readers`` (image, label, depth files),
``samples`` (``expand_samples``, ``load_sample``), ``build`` (``build_samples``:
split + expansion + subsets, shared by evaluation and training), ``labelme``
(polygon files, derived class map) and ``checker`` (``check``).

A corrupt or missing file never stops a run: readers raise ``SampleLoadError``
naming the file, and the loops here log a warning and count it in a ``SkipLog``.
Every name below is importable from ``minelisa_training.museg``.
"""

from __future__ import annotations

import logging

from ..errors import DataError, SampleLoadError
from ..skips import SkipLog, SkippedFile
from .build import SampleSet, SplitOptions, build_samples, random_subset
from .checker import CheckReport, check
from .classes import (
    IGNORE_VALUE,
    ORDER_A,
    ORDER_A_NAMES,
    ORDER_B,
    ORDER_B_NAMES,
    ClassMap,
    load_class_map,
    normalize_class_name,
)
from .labelme import (
    derive_class_map,
    draw_shape,
    match_order,
    order_verdict,
    rasterize_shapes,
    read_polygons,
    shape_label_votes,
)
from .layout import (
    GROUP_FIELDS,
    IMAGE_EXTENSIONS,
    MINE_DIR_RE,
    FrameSequence,
    ImageRecord,
    Layout,
    capture_group,
    find_root,
    mine_dirs,
    mine_key,
    read_intrinsics,
    read_sequences,
    scan,
)
from .readers import class_presence, ignore_mask, load_depth, load_image, load_label
from .samples import (
    INSTRUCTION_TEMPLATES,
    PAPER_TEMPLATE,
    LoadedSample,
    Sample,
    expand_samples,
    instruction_name,
    load_image_and_label,
    load_sample,
    target_masks,
)
from .splits import (
    SCHEMES,
    SPLIT_NAMES,
    SplitSpec,
    group_split,
    make_splits,
    mine_split,
    read_official_split,
    read_split,
    split_source,
)

logger = logging.getLogger("minelisa.museg")

__all__ = [
    "CheckReport",
    "ClassMap",
    "DataError",
    "FrameSequence",
    "GROUP_FIELDS",
    "IGNORE_VALUE",
    "IMAGE_EXTENSIONS",
    "INSTRUCTION_TEMPLATES",
    "ImageRecord",
    "Layout",
    "LoadedSample",
    "MINE_DIR_RE",
    "ORDER_A",
    "ORDER_A_NAMES",
    "ORDER_B",
    "ORDER_B_NAMES",
    "PAPER_TEMPLATE",
    "SCHEMES",
    "SPLIT_NAMES",
    "Sample",
    "SampleLoadError",
    "SampleSet",
    "SkipLog",
    "SkippedFile",
    "SplitOptions",
    "SplitSpec",
    "build_samples",
    "capture_group",
    "check",
    "class_presence",
    "derive_class_map",
    "draw_shape",
    "expand_samples",
    "find_root",
    "group_split",
    "ignore_mask",
    "instruction_name",
    "load_class_map",
    "load_depth",
    "load_image",
    "load_image_and_label",
    "load_label",
    "load_sample",
    "make_splits",
    "match_order",
    "mine_dirs",
    "mine_key",
    "mine_split",
    "normalize_class_name",
    "order_verdict",
    "random_subset",
    "rasterize_shapes",
    "read_intrinsics",
    "read_official_split",
    "read_polygons",
    "read_sequences",
    "read_split",
    "scan",
    "shape_label_votes",
    "split_source",
    "target_masks",
]
