"""Photometric training augmentation for underground images (off for evaluation).

Mine cameras see low light, strong gamma changes from cap lamps, sensor noise and
motion/defocus blur. All four are photometric: masks stay exact, so the function
takes and returns only the image. Deterministic given the numpy ``Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MineAugment:
    """Each effect fires with its own probability; ranges are inclusive bounds.

    - low light: multiply brightness by a factor in ``dim_range``
    - gamma: ``out = in ** gamma`` on [0, 1], gamma in ``gamma_range``
    - noise: Gaussian sensor noise, sigma (in 0-255 units) in ``noise_sigma``
    - blur: Gaussian (defocus) or horizontal/vertical motion blur, kernel up to ``max_blur``
    """

    p_dim: float = 0.5
    dim_range: tuple[float, float] = (0.3, 0.9)
    p_gamma: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.6)
    p_noise: float = 0.5
    noise_sigma: tuple[float, float] = (2.0, 12.0)
    p_blur: float = 0.3
    max_blur: int = 7

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"augmentation expects an RGB uint8 [H, W, 3] image, got {image.dtype} {image.shape}"
            )
        # Draw every random number up front so the stream does not depend on which effects fire.
        fire = rng.random(4) < (self.p_dim, self.p_gamma, self.p_noise, self.p_blur)
        dim = rng.uniform(*self.dim_range)
        gamma = rng.uniform(*self.gamma_range)
        sigma = rng.uniform(*self.noise_sigma)
        blur_kind = int(rng.integers(3))
        ksize = 3 + 2 * int(rng.integers(max((self.max_blur - 3) // 2 + 1, 1)))
        noise_seed = int(rng.integers(2**31))

        out = image.astype(np.float32) / 255.0
        if fire[1]:
            out = np.power(out, gamma)
        if fire[0]:
            out = out * dim
        out *= 255.0
        if fire[3]:
            if blur_kind == 0:
                out = cv2.GaussianBlur(out, (ksize, ksize), 0)
            else:
                kernel = np.zeros((ksize, ksize), np.float32)
                if blur_kind == 1:
                    kernel[ksize // 2, :] = 1.0 / ksize
                else:
                    kernel[:, ksize // 2] = 1.0 / ksize
                out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT)
        if fire[2]:
            noise = np.random.default_rng(noise_seed).standard_normal(out.shape, dtype=np.float32)
            out = out + sigma * noise
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# The default used by training (`data.augment: true`): mine_augment(image, rng) -> image.
mine_augment = MineAugment()
