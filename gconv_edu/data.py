"""Synthetic images that need BOTH colour and shape, with colour and shape in different spatial frequencies.

Nine classes = {orange, blue, purple} colour x {0, 60, 120 degree} stripes, generated in code (no download) from a
seed. The images are built like natural images in one respect that matters for AlexNet's colour/grey split
(Krizhevsky et al. 2012, Fig. 3: colour-agnostic and colour-specific first-layer kernels):

- **colour is low-frequency**: the colour class is a broad, smooth blob of one chromatic direction (zero
  luminance: the three directions add nothing to the mean of R, G, B), at a random place, size and strength, on
  top of faint low-pass chromatic clutter of random hue;
- **shape is high-frequency luminance**: the orientation class is a fine achromatic grating (period 2.5 to 3.5
  pixels, +/- 15 degrees of jitter, random phase and contrast) in a soft disc placed independently of the blob;
- the grey level varies per image, and pixel noise (standard deviation ``noise``, 0.3 by default) is added to every
  channel: strong enough that the small networks of lesson 10 do not reach 100 % (a ceiling would make every
  comparison between them empty).

So one filter type (smooth, colour-opponent) carries the colour and another (fine, black-and-white, oriented) the
shape: a network has a reason to learn both kinds, and two towers could each take one. Neither colour alone nor
orientation alone separates the nine classes.
The class hues are the chromatic parts of Okabe and Ito's orange, sky blue and reddish purple. With the luminance
removed, only orange (yellow side) and sky blue (blue side) differ on the blue-yellow axis that red-green colour-blind
viewers keep; purple's part is mostly red-green, so figures name every class in text as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import positive_int

__all__ = ["CLASS_NAMES", "COLOUR_NAMES", "ORIENTATION_NAMES", "Dataset", "make_dataset", "make_images"]

COLOUR_NAMES = ("orange", "blue", "purple")
ORIENTATION_NAMES = ("0 deg", "60 deg", "120 deg")  # the stripes' angle from horizontal, counter-clockwise
CLASS_NAMES = tuple(f"{colour} {orientation}" for colour in COLOUR_NAMES for orientation in ORIENTATION_NAMES)

# Okabe-Ito orange, sky blue, reddish purple; only their chromatic part (minus the mean of R, G, B) is kept, scaled
# to one length, so the colour classes differ in hue only, never in luminance.
_HUES = np.array([[0.90, 0.62, 0.0], [0.34, 0.71, 0.91], [0.80, 0.47, 0.65]])
_CHROMA = _HUES - _HUES.mean(axis=1, keepdims=True)  # (3, 3): each row sums to 0 (zero luminance)
_CHROMA /= np.linalg.norm(_CHROMA, axis=1, keepdims=True)
_STRIPE_ANGLES = np.deg2rad([0.0, 60.0, 120.0])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], size: int) -> np.ndarray:
    """Low-pass noise: white noise on a (size/4)-coarse grid, upsampled by repetition and box-blurred once."""
    coarse = rng.standard_normal((*shape, size // 4 + 1, size // 4 + 1))
    fine = np.repeat(np.repeat(coarse, 4, axis=-2), 4, axis=-1)[..., :size, :size]
    blurred = fine.copy()
    # A 3x3 box blur by shifted sums (np.roll wraps around; the seam is hidden in the noise).
    for axis in (-2, -1):
        blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3
    return blurred


def make_images(count: int, size: int = 16, seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``count`` images with balanced labels.

    Returns:
        images: (count, 3, size, size) float32, RGB mostly in [0, 1] (noise and strong blobs reach beyond)
        labels: (count,) int64 in [0, 9): ``3 * colour + orientation``, names in :data:`CLASS_NAMES`
    """
    count = positive_int("count", count)
    size = positive_int("size", size, 8)
    if noise < 0:
        raise ValueError(f"noise={noise} must be >= 0")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    colour, orientation = labels // len(ORIENTATION_NAMES), labels % len(ORIENTATION_NAMES)

    def per_image(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, count)[:, None, None]  # (count, 1, 1), broadcasts over the pixels

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)  # (size, size) each
    # Shape: a fine achromatic grating. The wave vector is perpendicular to the stripes; rows grow downwards, so an
    # angle counter-clockwise on screen is negative in (row, col).
    angle = -(_STRIPE_ANGLES[orientation][:, None, None] + np.pi / 2 + np.deg2rad(per_image(-15, 15)))
    frequency = 2 * np.pi / per_image(2.5, 3.5)  # radians per pixel: a period of 2.5 to 3.5 pixels
    grating = np.sin(frequency * (np.cos(angle) * cols + np.sin(angle) * rows) + per_image(0, 2 * np.pi))
    centre_row, centre_col = per_image(0.3 * size, 0.7 * size), per_image(0.3 * size, 0.7 * size)
    radius = per_image(0.25 * size, 0.4 * size)
    window = np.clip((radius - np.hypot(rows - centre_row, cols - centre_col)) / 1.5 + 0.5, 0.0, 1.0)
    luminance = per_image(0.35, 0.65) + per_image(0.15, 0.3) * grating * window  # (count, size, size)

    # Colour: a broad blob of the class's chromatic direction, placed independently of the grating.
    blob_row, blob_col = per_image(0.2 * size, 0.8 * size), per_image(0.2 * size, 0.8 * size)
    spread = per_image(0.3 * size, 0.5 * size)
    blob = np.exp(-((rows - blob_row) ** 2 + (cols - blob_col) ** 2) / (2 * spread**2))  # (count, size, size)
    strength = rng.uniform(0.05, 0.12, count)[:, None]  # (count, 1)
    chroma = (strength * _CHROMA[colour])[:, :, None, None] * blob[:, None]  # (count, 3, size, size)
    clutter_direction = rng.standard_normal((count, 3))
    clutter_direction -= clutter_direction.mean(axis=1, keepdims=True)  # chromatic only
    clutter_direction /= np.linalg.norm(clutter_direction, axis=1, keepdims=True)
    clutter = 0.04 * clutter_direction[:, :, None, None] * _smooth_noise(rng, (count, 1), size)

    images = luminance[:, None] + chroma + clutter + noise * rng.standard_normal((count, 3, size, size))
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


def make_dataset(train: int = 2700, test: int = 900, size: int = 16, seed: int = 0, noise: float = 0.3) -> Dataset:
    """Independent train and test sets (different seeds), standardised with the training statistics."""
    x_train, y_train = make_images(train, size, seed=2 * seed, noise=noise)
    raw_test, y_test = make_images(test, size, seed=2 * seed + 1, noise=noise)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)  # (1, 3, 1, 1)
    std = (x_train - mean).std()
    return Dataset((x_train - mean) / std, y_train, (raw_test - mean) / std, y_test, raw_test, mean.ravel(), std)
