"""MineLISA model, MUSeg data pipeline, training and evaluation (no ROS imports).

The public API, importable from the package itself::

    from minelisa_training import SegmentationEngine, ModelOptions, MineLisaError

Names are imported on first use, so ``import minelisa_training`` stays cheap
(torch and transformers load only when a model class is touched).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SegmentationEngine": "engine",
    "SegmentationResult": "engine",
    "EncodedImage": "engine",
    "validate_instruction": "engine",
    "ModelOptions": "model_options",
    "add_model_arguments": "model_options",
    "load_model": "checkpoint",
    "save_bundle": "checkpoint",
    "LoadedModel": "checkpoint",
    "LoadReport": "checkpoint",
    "MineLisaConfig": "config",
    "TrainConfig": "training.config",
    "load_config": "training.config",
    "MineLisaError": "errors",
    "InvalidInputError": "errors",
    "CheckpointError": "errors",
    "DataError": "errors",
    "SampleLoadError": "errors",
    "ConfigError": "errors",
    "TrainingError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'minelisa_training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
