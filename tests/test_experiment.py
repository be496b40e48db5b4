"""The experiment's ingredients: the synthetic data, a quick training run, and lesson 10 end to end in fast mode
(through `gconv-edu lessons`, with its seeds from the environment) and its refusal of bad seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gconv_edu import nn
from gconv_edu.data import CLASS_NAMES, make_dataset, make_images

threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits  # absent on a bare GPU machine

LESSON = Path(__file__).resolve().parents[1] / "lessons" / "10_do_groups_specialise.py"


def test_images_are_deterministic_balanced_and_in_range():
    images, labels = make_images(90, size=16, seed=3)
    again, labels_again = make_images(90, size=16, seed=3)
    other, _ = make_images(90, size=16, seed=4)
    assert images.shape == (90, 3, 16, 16) and images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert not np.array_equal(images, other)
    assert np.bincount(labels, minlength=len(CLASS_NAMES)).tolist() == [10] * len(CLASS_NAMES)
    low, high = np.percentile(images, [1, 99])
    assert -0.5 < low < 0.3 and 0.6 < high < 2.0  # RGB mostly in [0, 1]; the pixel noise reaches beyond


def test_colour_alone_and_orientation_alone_do_not_classify():
    """Within one colour, the mean colour of an image says nothing about its orientation class (and vice versa):
    the nearest-class-mean classifier on mean RGB gets the colour right but stays near chance on orientation."""
    images, labels = make_images(1800, seed=5)
    mean_rgb = images.mean(axis=(2, 3))  # (N, 3): colour information only, no shape
    colour, orientation = labels // 3, labels % 3
    centroids = np.array([mean_rgb[colour == c].mean(axis=0) for c in range(3)])
    predicted_colour = np.argmin(((mean_rgb[:, None] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(predicted_colour == colour) > 0.6  # colour is in the pixels' mean
    orientation_centroids = np.array([mean_rgb[orientation == o].mean(axis=0) for o in range(3)])
    distances = ((mean_rgb[:, None] - orientation_centroids[None]) ** 2).sum(axis=2)
    assert np.mean(np.argmin(distances, axis=1) == orientation) < 0.45  # chance is 1/3: shape is not in the mean


def test_dataset_standardisation_uses_training_statistics():
    data = make_dataset(train=180, test=90, seed=1)
    assert data.x_train.shape == (180, 3, 16, 16) and data.x_test.shape == (90, 3, 16, 16)
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert data.x_train.std() == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(data.x_test, (data.raw_test - data.mean[None, :, None, None]) / data.std, rtol=1e-5)


def test_bad_data_arguments_are_rejected():
    with pytest.raises(ValueError, match="count=0"):
        make_images(0)
    with pytest.raises(TypeError, match=r"size=16\.0"):
        make_images(10, size=16.0)
    with pytest.raises(ValueError, match="noise=-1"):
        make_images(10, noise=-1)


def test_quick_training_run_reaches_well_above_chance():
    data = make_dataset(train=900, test=300, seed=0)
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5, padding=2, bias=False, rng=rng),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False, rng=rng),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.GlobalAvgPool(),
        nn.Linear(16, len(CLASS_NAMES), rng=rng),
    )
    optimiser = nn.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    chance = 1 / len(CLASS_NAMES)
    before = nn.accuracy(model, data.x_test, data.y_test)
    with threadpool_limits(limits=1, user_api="blas"):  # tiny GEMMs: threads only add contention
        losses = [nn.train_epoch(model, optimiser, data.x_train, data.y_train, 32, rng) for _ in range(3)]
    after = nn.accuracy(model, data.x_test, data.y_test)
    assert losses[-1] < losses[0]
    assert after > 3 * chance, f"test accuracy {after:.3f} after 3 epochs (before {before:.3f}, chance {chance:.3f})"


FIGURES = [
    "10_accuracy_and_cost.png",
    "10_colour_selectivity.png",
    "10_data_samples.png",
    "10_filter_correlation.png",
    "10_first_layer_filters.png",
]


@pytest.mark.slow
def test_lesson_10_through_gconv_edu_lessons_takes_its_seeds_from_the_environment(tmp_path):
    """`gconv-edu lessons 10 --fast` passes GCONV_SEEDS / GCONV_DATA_SEED through; the rules come before training."""
    env = {**os.environ, "GCONV_SEEDS": "3,5", "GCONV_DATA_SEED": "1", "MPLBACKEND": "Agg"}
    env.pop("GCONV_LESSONS_FAST", None)
    command = [sys.executable, "-m", "gconv_edu", "lessons", "10", "--fast", "--figures", str(tmp_path)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "FAST MODE" in out and "FAILED" not in out
    assert "seeds (3, 5) (data seed 1)" in out
    assert out.index("Pre-registered decision rules") < out.index("trained 4 runs")
    for verdict in ("Claim 1", "Claim 2 (same accuracy), R1", "Regulariser, R2", "R3", "R4", "Time, R5"):
        assert verdict in out, f"{verdict} verdict missing"
    assert sorted(p.name for p in tmp_path.glob("10_*.png")) == FIGURES


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--seeds", "0"], {}, "--seeds='0' must name at least 2 distinct seeds"),
        (["--seeds", "a-b"], {}, "--seeds='a-b': expected seeds like"),
        ([], {"GCONV_SEEDS": "1,1"}, "GCONV_SEEDS='1,1' must name at least 2 distinct seeds"),
        (["--data-seed", "-1"], {}, "--data-seed='-1': expected an int >= 0"),
        ([], {"GCONV_DATA_SEED": "x"}, "GCONV_DATA_SEED='x': expected an int >= 0"),
    ],
)
def test_lesson_10_refuses_bad_seeds_before_any_work(tmp_path, arguments, environment, message):
    env = {**os.environ, "GCONV_FIGURES_DIR": str(tmp_path), "MPLBACKEND": "Agg", **environment}
    result = subprocess.run(
        [sys.executable, str(LESSON), *arguments], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Pre-registered" not in result.stdout and not list(tmp_path.glob("*.png"))
