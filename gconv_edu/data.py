"""Synthetic images that need BOTH colour and shape to classify, generated in code (no download), from a seed.

Nine classes = {warm, green, cool} colour x {0, 60, 120 degree} grating. Each image is a soft-edged patch of an
oriented sine grating on a cluttered background:

- the colour class sets the patch's hue; both hues have the same luminance (mean of R, G, B), and the brightness is
  random, so colour must be read from the chromatic direction, not from how bright the patch is;
- the orientation class sets the grating's orientation (+/- 25 degrees of jitter), with random frequency, phase
  and contrast,
  so orientation must be read from the spatial pattern;
- the patch's position and size vary, and the background is low-pass coloured clutter plus pixel noise.

Neither colour alone nor orientation alone separates the nine classes: a classifier needs both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "COLOUR_NAMES", "ORIENTATION_NAMES", "Dataset", "make_dataset", "make_images"]

COLOUR_NAMES = ("warm", "green", "cool")
ORIENTATION_NAMES = ("0 deg", "60 deg", "120 deg")  # the stripes' angle from horizontal, counter-clockwise
CLASS_NAMES = tuple(f"{colour} {orientation}" for colour in COLOUR_NAMES for orientation in ORIENTATION_NAMES)

# Orange-red, green and blue hues, scaled so that their luminance (the mean over R, G, B) is the same.
_HUES = np.array([[1.0, 0.45, 0.15], [0.35, 0.9, 0.25], [0.15, 0.45, 1.0]])
_HUES *= 0.5 / _HUES.mean(axis=1, keepdims=True)
_STRIPE_ANGLES = np.deg2rad([0.0, 60.0, 120.0])


def _check_count(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], size: int) -> np.ndarray:
    """Low-pass noise: white noise on a (size/4)-coarse grid, upsampled by repetition and box-blurred once."""
    coarse = rng.standard_normal((*shape, size // 4 + 1, size // 4 + 1))
    fine = np.repeat(np.repeat(coarse, 4, axis=-2), 4, axis=-1)[..., :size, :size]
    blurred = fine.copy()
    # A 3x3 box blur by shifted sums (np.roll wraps around; the seam is hidden in the noise).
    for axis in (-2, -1):
        blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3
    return blurred


def make_images(count: int, size: int = 16, seed: int = 0, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``count`` images with balanced labels.

    Returns:
        images: (count, 3, size, size) float32, RGB mostly in [0, 1] (noise and bright patches reach beyond)
        labels: (count,) int64 in [0, 9): ``3 * colour + orientation``, names in :data:`CLASS_NAMES`
    """
    count = _check_count("count", count, 1)
    size = _check_count("size", size, 8)
    if noise < 0:
        raise ValueError(f"noise={noise} must be >= 0")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    colour, orientation = labels // len(ORIENTATION_NAMES), labels % len(ORIENTATION_NAMES)

    def per_image(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, count)[:, None, None]  # (count, 1, 1), broadcasts over the pixels

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)  # (size, size) each
    # The wave vector is perpendicular to the stripes; rows grow downwards, so an angle counter-clockwise on screen is
    # negative in (row, col). Classes are 60 degrees apart, the jitter +/- 25 degrees.
    angle = -(_STRIPE_ANGLES[orientation][:, None, None] + np.pi / 2 + np.deg2rad(per_image(-25, 25)))
    frequency = per_image(0.17, 0.30) * 2 * np.pi  # radians per pixel: a period of 3.3 to 6 pixels
    phase = per_image(0, 2 * np.pi)
    grating = np.sin(frequency * (np.cos(angle) * cols + np.sin(angle) * rows) + phase)  # (count, size, size)

    centre_row, centre_col = per_image(0.3 * size, 0.7 * size), per_image(0.3 * size, 0.7 * size)
    radius = per_image(0.16 * size, 0.3 * size)
    distance = np.hypot(rows - centre_row, cols - centre_col)
    window = np.clip((radius - distance) / 1.5 + 0.5, 0.0, 1.0)  # (count, size, size): soft disc, 1.5-pixel edge

    hue = _HUES[colour] + rng.normal(0.0, 0.12, (count, 3))  # (count, 3): jittered around the class hue
    brightness = rng.uniform(0.6, 1.4, count)[:, None]
    contrast = per_image(0.3, 0.9)[:, None]  # (count, 1, 1, 1)
    patch = (brightness * hue)[:, :, None, None] * (1.0 + contrast * grating[:, None])  # (count, 3, size, size)

    grey = per_image(0.25, 0.6)[:, None]  # (count, 1, 1, 1)
    clutter = 0.15 * _smooth_noise(rng, (count, 3), size) + 0.1 * _smooth_noise(rng, (count, 1), size)
    images = (grey + clutter) * (1 - window[:, None]) + patch * window[:, None]
    images += noise * rng.standard_normal(images.shape)
    return images.astype(np.float32), labels


@dataclass(frozen=True)
class Dataset:
    """Train and test splits, standardised with the training set's per-channel mean and ONE overall standard deviation.

    One scale for all channels keeps the colour geometry: the luminance direction stays (1, 1, 1) / sqrt(3) in the
    standardised space, so a first-layer filter's colour selectivity can be read off its weights directly.

    x_train: (N_train, 3, size, size) float32; y_train: (N_train,) int64; likewise x_test, y_test.
    ``raw_test`` keeps the unstandardised test images (RGB in about [0, 1]) for pictures.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    raw_test: np.ndarray
    mean: np.ndarray
    std: float
    class_names: tuple[str, ...] = CLASS_NAMES


def make_dataset(train: int = 2700, test: int = 900, size: int = 16, seed: int = 0, noise: float = 0.2) -> Dataset:
    """Independent train and test sets (different seeds), standardised with the training statistics."""
    x_train, y_train = make_images(train, size, seed=2 * seed, noise=noise)
    raw_test, y_test = make_images(test, size, seed=2 * seed + 1, noise=noise)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)  # (1, 3, 1, 1)
    std = (x_train - mean).std()
    return Dataset((x_train - mean) / std, y_train, (raw_test - mean) / std, y_test, raw_test, mean.ravel(), std)
