"""Textures: colour jitter, solid and striped paints, rock surfaces.

A paint keeps its own noise seed (drawn from the scene's generator when it is made),
so painting does not consume the scene's random stream.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import Paint


def jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float32) + rng.normal(0, amount, 3), 0, 255)


def _grain(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)[..., None]


def solid(rng: np.random.Generator, rgb: np.ndarray, grain: float) -> Paint:
    seed = int(rng.integers(2**31))

    def paint(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
        noise = grain * _grain(seed, Y.shape)
        return np.broadcast_to(rgb, Y.shape + (3,)) + noise

    return paint


def stripes(
    rng: np.random.Generator,
    a: np.ndarray,
    b: np.ndarray,
    period: float,
    angle: float,
    duty: float = 0.5,
    grain: float = 6.0,
) -> Paint:
    seed = int(rng.integers(2**31))
    ca, sa = np.cos(angle), np.sin(angle)

    def paint(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
        phase = ((X * ca + Y * sa) / max(period, 1.0)) % 1.0
        out = np.where((phase < duty)[..., None], a, b).astype(np.float32)
        return out + grain * _grain(seed, Y.shape)

    return paint


def rock(rng: np.random.Generator, h: int, w: int, tint: np.ndarray) -> np.ndarray:
    """Rock/shotcrete: low-frequency blotches plus grain, as float RGB [h, w, 3]."""
    blotches = rng.standard_normal((max(h // 24, 2), max(w // 24, 2)), dtype=np.float32)
    low = cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((h, w), dtype=np.float32)
    shade = 1.0 + 0.22 * low + 0.10 * grain
    return tint[None, None, :] * shade[..., None]
