"""Loading MineLISA from local files, and writing the bundle the robot serves.

Nothing is downloaded. Formats (``bundle``, ``lisa``, ``llava``) are described
in `formats`; `load_model` in `loader`; memory estimates in `memory`.
"""

from ..errors import CheckpointError
from ..runtime import DTYPES
from ..runtime import torch_dtype as resolve_dtype
from .bundle import iter_lisa_state_dict, save_bundle
from .files import LISA_PREFIXES, map_lisa_key, read_weights, weight_files, weight_shapes
from .formats import (
    BUNDLE_FILE,
    BUNDLE_VERSION,
    BUNDLE_WEIGHTS,
    DetectedCheckpoint,
    detect,
    detect_format,
)
from .loader import LoadedModel, LoadReport, construction, load_model

__all__ = [
    "BUNDLE_FILE",
    "BUNDLE_VERSION",
    "BUNDLE_WEIGHTS",
    "DTYPES",
    "LISA_PREFIXES",
    "CheckpointError",
    "DetectedCheckpoint",
    "LoadReport",
    "LoadedModel",
    "construction",
    "detect",
    "detect_format",
    "iter_lisa_state_dict",
    "load_model",
    "map_lisa_key",
    "read_weights",
    "resolve_dtype",
    "save_bundle",
    "weight_files",
    "weight_shapes",
]
