"""gconv_edu.data: colour lives in low-frequency, zero-luminance blobs; shape in a fine achromatic grating.

These are the properties lesson 10's experiment relies on (a reason for colour filters and grey filters to differ);
the basic contract (determinism, balance, range, standardisation, bad arguments) is tested in test_experiment.py.
"""

from __future__ import annotations

import numpy as np

from gconv_edu.data import make_images


def _power_below(images: np.ndarray, cutoff: float) -> float:
    """Share of the power (mean removed per image and channel) below ``cutoff`` cycles per pixel. images (..., H, W)."""
    centred = images - images.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    size = images.shape[-1]
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    return float(power[..., frequency < cutoff].sum() / power.sum())


def test_noise_is_the_last_draw_so_a_noise_free_copy_matches():
    noisy, labels = make_images(60, seed=7, noise=0.3)
    clean, same_labels = make_images(60, seed=7, noise=0.0)
    np.testing.assert_array_equal(labels, same_labels)
    assert abs((noisy - clean).std() / 0.3 - 1) < 0.05


def test_colour_part_carries_no_luminance_and_the_grey_part_no_colour_class():
    images, labels = make_images(900, seed=2, noise=0.0)
    colour = labels // 3
    luminance = images.mean(axis=1)  # (N, H, W)
    # The class blob is chromatic only: the luminance's mean is the same for the three colours (per-image grey level
    # uniform in [0.35, 0.65]: its standard error over 300 images is 0.005).
    means = [luminance[colour == c].mean() for c in range(3)]
    assert np.ptp(means) < 0.02, means
    # The colour part (RGB minus their mean) has the class's direction on average: nearest class mean gets it right.
    chroma = (images - images.mean(axis=1, keepdims=True)).mean(axis=(2, 3))  # (N, 3)
    centroids = np.array([chroma[colour == c].mean(axis=0) for c in range(3)])
    predicted = np.argmin(((chroma[:, None] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(predicted == colour) > 0.8


def test_colour_is_low_frequency_and_the_grating_high_frequency():
    images, _ = make_images(300, seed=3, noise=0.0)
    chroma = images - images.mean(axis=1, keepdims=True)  # (N, 3, H, W)
    luminance = images.mean(axis=1)  # (N, H, W)
    assert _power_below(chroma, 0.15) > 0.8  # broad blobs and low-pass clutter
    assert _power_below(luminance, 0.15) < 0.1  # a grating of period 2.5 to 3.5 pixels: 0.29 to 0.4 cycles/pixel


def test_the_grating_orientation_is_the_class_orientation():
    """The luminance spectrum's peak lies perpendicular to the stripes: 0, 60, 120 degrees (+/- 15 of jitter)."""
    images, labels = make_images(270, seed=4, noise=0.0)
    luminance = images.mean(axis=1)
    luminance = luminance - luminance.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(luminance)) ** 2  # (N, H, W)
    size = images.shape[-1]
    row_frequency, col_frequency = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    peak = power.reshape(len(images), -1).argmax(axis=1)
    # The wave vector (col, -row) on screen is perpendicular to the stripes; orientation modulo 180 degrees.
    wave_angle = np.degrees(np.arctan2(-row_frequency.ravel()[peak], col_frequency.ravel()[peak]))
    stripe_angle = (wave_angle - 90) % 180
    expected = np.array([0.0, 60.0, 120.0])[labels % 3]
    error = (stripe_angle - expected + 90) % 180 - 90
    assert np.mean(np.abs(error) < 25) > 0.9  # jitter 15 degrees plus the 16 x 16 grid's coarse frequency bins
