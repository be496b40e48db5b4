"""gconv_edu.nn: every layer's hand-written backward against finite differences, plus PyTorch where installed."""

from __future__ import annotations

import numpy as np
import pytest

from gconv_edu import nn
from gconv_edu.gradcheck import numeric_gradient, relative_error

EPS = 1e-6
TOLERANCE = 1e-6  # central differences in float64 on smooth (or kink-free at random points) functions


def check_layer_gradients(layer: nn.Module, x: np.ndarray, seed: int = 0) -> None:
    """L = sum(layer(x) * dy) with a random dy: compare dx and every parameter's grad with central differences."""
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * dy))

    layer.forward(x)
    dx = layer.backward(dy)
    analytic = [("dx", dx, x)] + [(f"d{p.name}", p.grad.copy(), p.value) for p in layer.parameters()]
    for name, gradient, array in analytic:
        assert gradient.shape == array.shape, f"{name}: shape {gradient.shape} != {array.shape}"
        error = relative_error(gradient, numeric_gradient(loss, array, EPS))
        assert error < TOLERANCE, f"{type(layer).__name__} {name}: relative error {error:.2e}"


def float64_layer(layer: nn.Module) -> nn.Module:
    """Cast a layer's parameters (and BatchNorm's running statistics) to float64 for finite differences."""
    for module in layer.layers if isinstance(layer, nn.Sequential) else [layer]:
        for parameter in module.parameters():
            parameter.value = parameter.value.astype(np.float64)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean = module.running_mean.astype(np.float64)
            module.running_var = module.running_var.astype(np.float64)
    return layer


def perturbed_batchnorm(channels: int, training: bool) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(channels, dtype=np.float64)
    rng = np.random.default_rng(7)
    layer.gamma.value = rng.uniform(0.5, 1.5, channels)
    layer.beta.value = rng.standard_normal(channels)
    layer.running_mean, layer.running_var = rng.standard_normal(channels), rng.uniform(0.5, 2.0, channels)
    return layer.train(training)


LAYERS = {
    "conv": lambda: nn.Conv2d(4, 6, 3, padding=1, rng=1, dtype=np.float64),
    "conv-grouped-strided": lambda: nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, rng=1, dtype=np.float64),
    "conv-depthwise-nobias": lambda: nn.Conv2d(4, 8, 3, padding="same", groups=4, bias=False, rng=1, dtype=np.float64),
    "relu": nn.ReLU,
    "maxpool2": lambda: nn.MaxPool2d(2),
    "maxpool3-stride2-overlapping": lambda: nn.MaxPool2d(3, stride=2),
    "avgpool2": lambda: nn.AvgPool2d(2),
    "avgpool3-stride2-overlapping": lambda: nn.AvgPool2d(3, stride=2),
    "global-avgpool": nn.GlobalAvgPool,
    "flatten": nn.Flatten,
    "channel-shuffle": lambda: nn.ChannelShuffle(2),
    "batchnorm-train": lambda: perturbed_batchnorm(4, training=True),
    "batchnorm-eval": lambda: perturbed_batchnorm(4, training=False),
    "sequential": lambda: float64_layer(
        nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False, rng=3),  # BatchNorm cancels a bias
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.ChannelShuffle(2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 3 * 2, 3, rng=4),
        )
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_backward_matches_finite_differences(name):
    x = np.random.default_rng(11).standard_normal((2, 4, 7, 5))  # odd sizes: pooling drops the last row/column
    check_layer_gradients(LAYERS[name](), x)


def test_linear_backward_matches_finite_differences():
    layer = float64_layer(nn.Linear(5, 3, rng=2))
    check_layer_gradients(layer, np.random.default_rng(3).standard_normal((4, 5)))


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    loss, dlogits = nn.softmax_cross_entropy(logits, labels)
    numeric = numeric_gradient(lambda: nn.softmax_cross_entropy(logits, labels)[0], logits, EPS)
    assert relative_error(dlogits, numeric) < TOLERANCE
    # Independent value: -log of the softmax probability of the true class, averaged.
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(6), labels])), rel=1e-12)
    # Large logits must not overflow.
    big_loss, _ = nn.softmax_cross_entropy(logits * 1e4, labels)
    assert np.isfinite(big_loss)


def test_pooling_matches_definition():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    # (H - k) // s + 1 with k=2, s=2: 5 -> 2, 6 -> 3; the last row is dropped.
    expected_max = x[:, :, :4, :6].reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(nn.MaxPool2d(2).forward(x), expected_max)
    expected_mean = x[:, :, :4, :6].reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(nn.AvgPool2d(2).forward(x), expected_mean, rtol=1e-12)


def test_layers_match_torch():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = np.random.default_rng(1).standard_normal((3, 4, 7, 6))
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(nn.MaxPool2d(3, 2).forward(x), functional.max_pool2d(xt, 3, 2).numpy(), rtol=1e-12)
    np.testing.assert_allclose(nn.AvgPool2d(3, 2).forward(x), functional.avg_pool2d(xt, 3, 2).numpy(), rtol=1e-12)
    ours = nn.BatchNorm2d(4, momentum=0.3, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(4, momentum=0.3).double()
    for _ in range(2):  # two steps: the running statistics must follow PyTorch's update rule
        np.testing.assert_allclose(ours.forward(x), theirs(xt).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-10)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours.forward(x), theirs(xt).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sgd_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    start, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(3)]
    parameter = nn.Parameter(start.copy(), "w")
    optimiser = nn.SGD([parameter], lr=0.1, momentum=0.9, weight_decay=0.01)
    tensor = torch.tensor(start.copy(), requires_grad=True)
    torch_optimiser = torch.optim.SGD([tensor], lr=0.1, momentum=0.9, weight_decay=0.01)
    for gradient in grads:
        parameter.grad = gradient
        optimiser.step()
        tensor.grad = torch.from_numpy(gradient.copy())
        torch_optimiser.step()
    np.testing.assert_allclose(parameter.value, tensor.detach().numpy(), rtol=1e-12)


def test_same_seed_same_weights_different_seed_different_weights():
    first, second, other = (nn.Conv2d(3, 8, 3, rng=seed) for seed in (4, 4, 5))
    np.testing.assert_array_equal(first.weight.value, second.weight.value)
    assert not np.array_equal(first.weight.value, other.weight.value)


def test_conv_layer_uses_fan_in_of_its_group():
    # He initialisation: std = sqrt(2 / fan_in), fan_in = C_in / groups * kH * kW = 64 / 4 * 9 = 144.
    layer = nn.Conv2d(64, 64, 3, groups=4, rng=0, dtype=np.float64)
    assert layer.weight.value.shape == (64, 16, 3, 3)
    assert layer.weight.value.std() == pytest.approx(np.sqrt(2 / 144), rel=0.05)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: nn.Conv2d(6, 4, 3, groups=4), ValueError, "groups=4 must divide in_channels=6"),
        (lambda: nn.Conv2d(4, 4, 3, groups=2.0), TypeError, "groups=2.0"),
        (lambda: nn.Conv2d(4, 4, 0), ValueError, "kernel_size=0"),
        (lambda: nn.Conv2d(4, 4, 3, stride=0), ValueError, "stride=0"),
        (lambda: nn.Conv2d(4, 4, 3, backend="fast"), ValueError, "backend='fast' is not a known backend"),
        (lambda: nn.Linear(0, 3), ValueError, "in_features=0"),
        (lambda: nn.MaxPool2d(2, stride=0), ValueError, "stride=0"),
        (lambda: nn.BatchNorm2d(4, momentum=2.0), ValueError, "momentum=2.0"),
        (lambda: nn.SGD([], lr=0.0), ValueError, "lr=0.0"),
        (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "layers[1]"),
    ],
)
def test_bad_construction_is_rejected(make, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match=r"x.shape\[1\]=3 must equal"):
        nn.Linear(4, 2).forward(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="must be 4-D"):
        nn.MaxPool2d(2).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        nn.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be an int array"):
        nn.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


# --------------------------------------------------------------------------- construction validated by geometry
def test_conv_layer_is_validated_without_a_fake_input():
    # The hyper-parameters are checked by ConvGeometry.from_layer, which needs no input: a kernel wider than any
    # made-up input is a valid layer (it used to be refused against a fake 4096 x 4096 input).
    layer = nn.Conv2d(1, 2, (1, 4097), rng=0)
    assert layer.weight.value.shape == (2, 1, 1, 4097)
    y = layer.forward(np.ones((1, 1, 1, 4097), dtype=np.float32))
    assert y.shape == (1, 2, 1, 1)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, "groups=4 must divide out_channels=6"),
        (lambda: nn.Conv2d(4, 4, 3, stride=2, padding="same"), ValueError, "padding='same' needs stride 1"),
        (lambda: nn.Conv2d(4, 4, 3, padding=-1), ValueError, "padding=-1"),
        (lambda: nn.Conv2d(4, 4, 3, dilation=(1, 0)), ValueError, r"dilation=\(1, 0\)"),
        (lambda: nn.Conv2d(4, 4, 3, bias=1), TypeError, "bias=1 must be a bool"),
        (lambda: nn.Conv2d(4, 4, 3, dtype=np.int32), TypeError, "dtype=int32 must be float32 or float64"),
        (lambda: nn.Linear(3, 2, bias="yes"), TypeError, "bias='yes' must be a bool"),
        (lambda: nn.BatchNorm2d(4, eps=float("nan")), ValueError, "eps=nan"),
        (lambda: nn.BatchNorm2d(4, momentum=float("nan")), ValueError, "momentum=nan"),
        (lambda: nn.AvgPool2d(True), TypeError, "kernel_size=True"),
        (lambda: nn.ChannelShuffle(2**62), ValueError, "groups=4611686018427387904 must be < 2"),
    ],
)
def test_bad_hyper_parameters_name_the_parameter(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --------------------------------------------------------------------------- non-finite values, as torch
SPECIAL_X = np.array([-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf, np.nan, np.nan, -2.0, 3.0])
SPECIAL_DY = np.array([1.0, np.inf, np.nan, -np.inf, np.nan, 2.0, 5.0, np.nan, np.nan, np.inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_on_non_finite_values(dtype):
    x, dy = SPECIAL_X.astype(dtype), SPECIAL_DY.astype(dtype)
    layer = nn.ReLU()
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == dtype
    # relu(-inf) = 0; NaN passes; -0.0 stays -0.0 (torch's clamp keeps it)
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 1, np.inf, np.nan, np.nan, 0, 3])
    np.testing.assert_array_equal(np.signbit(y), np.signbit(SPECIAL_X) & (SPECIAL_X == 0))
    # the gradient is 0 where x <= 0 whatever dy is; elsewhere (NaN x included) it is dy
    np.testing.assert_array_equal(dx, [0, 0, 0, 0, np.nan, 2, 5, np.nan, 0, np.inf])


def test_relu_matches_torch_on_non_finite_values():
    torch = pytest.importorskip("torch")
    x = torch.tensor(SPECIAL_X, requires_grad=True)
    y = torch.relu(x)
    y.backward(torch.from_numpy(SPECIAL_DY))
    layer = nn.ReLU()
    ours_y = layer.forward(SPECIAL_X)
    ours_dx = layer.backward(SPECIAL_DY)
    np.testing.assert_array_equal(ours_y, y.detach().numpy())
    np.testing.assert_array_equal(np.signbit(ours_y), np.signbit(y.detach().numpy()))
    np.testing.assert_array_equal(ours_dx, x.grad.numpy())


@pytest.mark.parametrize("shape", [(1, 4, 1, 1)])
def test_batchnorm_refuses_one_value_per_channel_in_training(shape):
    layer = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when training.*\(1, 4, 1, 1\)"):
        layer.forward(np.ones(shape, dtype=np.float32))
    np.testing.assert_array_equal(layer.running_var, np.ones(4))  # nothing was updated
    assert layer.eval().forward(np.ones(shape, dtype=np.float32)).shape == shape  # evaluation needs no batch


def test_batchnorm_one_value_per_channel_is_refused_like_torch():
    torch = pytest.importorskip("torch")
    for shape in [(1, 4, 1, 1), (2, 4, 1, 1), (1, 4, 1, 2)]:
        x = np.random.default_rng(0).standard_normal(shape)
        try:
            expected = torch.nn.BatchNorm2d(4).double()(torch.from_numpy(x)).detach().numpy()
        except ValueError:
            with pytest.raises(ValueError, match="more than 1 value per channel"):
                nn.BatchNorm2d(4, dtype=np.float64).forward(x)
        else:
            np.testing.assert_allclose(nn.BatchNorm2d(4, dtype=np.float64).forward(x), expected, rtol=1e-10, atol=1e-12)
