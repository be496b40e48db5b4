"""gconv_edu.nn's module machinery as a PyTorch user expects it: printed form, parameter names, state dicts
(PyTorch's keys, copied arrays, strict checks, numpy.savez), and gradients that accumulate until zero_grad().
PyTorch, where installed, is the reference for the printed form, the keys and the accumulation."""

from __future__ import annotations

import numpy as np
import pytest

from gconv_edu import nn


# --------------------------------------------------------------------------- printed form
@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (
            lambda: nn.Conv2d(3, 16, 5, padding=2),
            "Conv2d(3, 16, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), groups=1, bias=True, backend=None)",
        ),
        (
            lambda: nn.Conv2d(
                4,
                8,
                (3, 2),
                stride=(2, 1),
                padding=(1, 0),
                dilation=2,
                groups=4,
                bias=False,
                backend="im2col",
                dtype=np.float64,
            ),
            "Conv2d(4, 8, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 2), groups=4, bias=False, "
            "backend='im2col', dtype='float64')",
        ),
        (
            lambda: nn.Conv2d(4, 4, 3, padding="same"),
            "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding='same', groups=1, bias=True, backend=None)",
        ),
        (lambda: nn.Linear(4, 3), "Linear(in_features=4, out_features=3, bias=True)"),
        (lambda: nn.Linear(4, 3, bias=False), "Linear(in_features=4, out_features=3, bias=False)"),
        (lambda: nn.BatchNorm2d(4), "BatchNorm2d(4, eps=1e-05, momentum=0.1)"),
        (lambda: nn.BatchNorm2d(8, momentum=0.3, eps=1e-3), "BatchNorm2d(8, eps=0.001, momentum=0.3)"),
        (lambda: nn.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2)"),
        (lambda: nn.AvgPool2d(3, stride=2), "AvgPool2d(kernel_size=3, stride=2)"),
        (nn.ReLU, "ReLU()"),
        (lambda: nn.ChannelShuffle(2), "ChannelShuffle(groups=2)"),
        (nn.Flatten, "Flatten()"),
        (nn.GlobalAvgPool, "GlobalAvgPool()"),
        (nn.Sequential, "Sequential()"),
    ],
)
def test_repr_shows_every_hyper_parameter(layer, expected):
    assert repr(layer()) == expected


CONV_REPR_CASES = [
    dict(in_channels=3, out_channels=16, kernel_size=5, padding=2),
    dict(in_channels=4, out_channels=8, kernel_size=(3, 2), stride=2, padding=(1, 0), dilation=(2, 1), groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", groups=4, bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=1, padding="valid", dilation=3),
]


@pytest.mark.parametrize("options", CONV_REPR_CASES)
def test_conv_repr_contains_everything_torch_shows(options):
    torch = pytest.importorskip("torch")
    theirs = repr(torch.nn.Conv2d(**options))  # torch leaves out defaults; ours shows them, dilation aside
    ours = repr(nn.Conv2d(**options)).replace("'", "")  # torch prints padding=same unquoted
    assert ours.startswith(theirs.split(",")[0] + ",")  # "Conv2d(C_in" then C_out
    for key in ("kernel_size", "stride", "padding", "dilation", "groups", "bias"):
        theirs_value = _repr_value(theirs, key)
        if theirs_value is not None:
            assert _repr_value(ours, key) == theirs_value, (key, ours, theirs)
    assert ("dilation=" in ours) == ("dilation=" in theirs)  # shown when not 1, as torch does


def _repr_value(text: str, key: str) -> str | None:
    start = text.find(key + "=")
    if start < 0:
        return None
    rest = text[start + len(key) + 1 :]
    end = rest.index(")") + 1 if rest.startswith("(") else min(i for i in (rest.find(","), rest.find(")")) if i >= 0)
    return rest[:end]


def test_sequential_repr_is_torchs_tree():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.ReLU(), nn.ChannelShuffle(2), nn.Sequential(nn.ReLU(), nn.ChannelShuffle(4)))
    theirs = torch.nn.Sequential(
        torch.nn.ReLU(), torch.nn.ChannelShuffle(2), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.ChannelShuffle(4))
    )
    assert repr(ours) == repr(theirs)
    assert repr(nn.Linear(4, 3)) == repr(torch.nn.Linear(4, 3))


# --------------------------------------------------------------------------- parameters, state dicts, gradients
def small_model(seed: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, groups=1, rng=seed, dtype=np.float64),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, groups=2, bias=False, rng=seed + 1, dtype=np.float64),
        nn.GlobalAvgPool(),
        nn.Linear(4, 3, rng=seed + 2, dtype=np.float64),
    )


def torch_small_model(torch):
    layers = torch.nn
    return layers.Sequential(
        layers.Conv2d(3, 4, 3, padding=1),
        layers.BatchNorm2d(4),
        layers.ReLU(),
        layers.Conv2d(4, 4, 3, groups=2, bias=False),
        layers.Sequential(layers.AdaptiveAvgPool2d(1), layers.Flatten()),  # our GlobalAvgPool: no parameters
        layers.Linear(4, 3),
    ).double()


def test_names_and_state_dict_keys_are_torchs():
    torch = pytest.importorskip("torch")
    ours, theirs = small_model(0), torch_small_model(torch)
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.value.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


def test_torch_weights_load_and_give_torchs_output():
    torch = pytest.importorskip("torch")
    ours, theirs = small_model(0), torch_small_model(torch)
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5))
    theirs(torch.from_numpy(x))  # one training step: running statistics and num_batches_tracked move
    ours.load_state_dict({key: value.numpy() for key, value in theirs.state_dict().items()})
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        expected = theirs(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours.forward(x), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours[1].running_var, theirs[1].running_var.numpy(), rtol=1e-12)
    assert int(ours[1].num_batches_tracked) == int(theirs[1].num_batches_tracked) == 2


def test_state_dict_round_trips_through_savez(tmp_path):
    source, target = small_model(0), small_model(10)
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    source.forward(x)  # moves the running statistics away from their initial values
    path = tmp_path / "model.npz"
    np.savez(path, **source.state_dict())
    with np.load(path) as saved:
        result = target.load_state_dict(saved)
    assert result == nn.IncompatibleKeys([], [])
    source.eval(), target.eval()
    np.testing.assert_array_equal(target.forward(x), source.forward(x))
    for (name, ours), (_, theirs) in zip(target.state_dict().items(), source.state_dict().items()):
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


def test_state_dict_arrays_are_copies():
    model = small_model(0)
    state = model.state_dict()
    state["0.weight"][...] = 7.0
    assert not np.any(model[0].weight.value == 7.0)
    source = {key: value.copy() for key, value in model.state_dict().items()}
    model.load_state_dict(source)
    source["0.weight"][...] = 5.0
    source["1.running_mean"][...] = 5.0
    assert not np.any(model[0].weight.value == 5.0) and not np.any(model[1].running_mean == 5.0)


def test_load_state_dict_casts_to_the_layers_dtype():
    layer = nn.Linear(3, 2)  # float32
    state = {"weight": np.ones((2, 3)), "bias": np.arange(2)}  # float64 and int
    layer.load_state_dict(state)
    assert layer.weight.value.dtype == layer.bias.value.dtype == np.float32
    np.testing.assert_array_equal(layer.bias.value, [0.0, 1.0])


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    model = small_model(0)
    good = model.state_dict()
    before = {key: value.copy() for key, value in good.items()}
    wrong_shape = dict(good, **{"5.weight": np.zeros((3, 5)), "0.bias": good["0.bias"] + 1})
    with pytest.raises(ValueError, match=r"state_dict\['5.weight'\] has shape \(3, 5\); .* is \(3, 4\)"):
        model.load_state_dict(wrong_shape)
    missing = {key: value for key, value in good.items() if key != "1.running_var"}
    with pytest.raises(ValueError, match=r"missing keys \['1.running_var'\], unexpected keys \[\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"missing keys \[\], unexpected keys \['3.bias'\]"):
        model.load_state_dict(dict(good, **{"3.bias": np.zeros(4)}))  # conv 3 has no bias
    with pytest.raises(TypeError, match=r"state_dict\['0.weight'\] must be a real numeric array"):
        model.load_state_dict(dict(good, **{"0.weight": good["0.weight"].astype(complex)}))
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        model.load_state_dict([("0.weight", good["0.weight"])])
    for key, value in model.state_dict().items():  # nothing was written by the failed loads
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    with pytest.raises(ValueError, match="has shape"):  # not strict: names may differ, shapes still may not
        model.load_state_dict({"5.weight": np.zeros((3, 5))}, strict=False)
    result = model.load_state_dict({"5.bias": np.ones(3), "extra": np.ones(1)}, strict=False)
    assert result.unexpected_keys == ["extra"] and "5.bias" not in result.missing_keys
    np.testing.assert_array_equal(model[5].bias.value, np.ones(3))


def test_batchnorm_weight_and_bias_are_gamma_and_beta():
    layer = nn.BatchNorm2d(3)
    assert layer.gamma is layer.weight and layer.beta is layer.bias
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def test_gradients_accumulate_until_zero_grad():
    model = small_model(0)
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    dy = np.random.default_rng(5).standard_normal((2, 3))
    model.forward(x)
    model.backward(dy)
    once = [p.grad.copy() for p in model.parameters()]
    assert all(np.any(g != 0) for g in once)
    model.forward(x)
    model.backward(dy)
    for parameter, gradient in zip(model.parameters(), once):  # a second backward adds (as in PyTorch)
        np.testing.assert_allclose(parameter.grad, 2 * gradient, rtol=1e-12, err_msg=parameter.name)
    model.zero_grad()
    assert all(not np.any(p.grad) and p.grad.dtype == p.value.dtype for p in model.parameters())
    model.forward(x)
    model.backward(dy)
    for parameter, gradient in zip(model.parameters(), once):
        np.testing.assert_array_equal(parameter.grad, gradient)


def test_gradients_accumulate_as_torchs():
    torch = pytest.importorskip("torch")
    ours = nn.Linear(3, 2, rng=0, dtype=np.float64)
    theirs = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.value))
    rng = np.random.default_rng(6)
    for _ in range(2):
        x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
        ours.forward(x)
        ours.backward(dy)
        theirs(torch.from_numpy(x)).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-12)


def test_train_epoch_zeroes_the_gradients_of_each_step():
    # One batch per epoch: the step must use that batch's gradient only, not the sum with the previous epoch's.
    rng = np.random.default_rng(8)
    x, labels = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    model, reference = nn.Linear(3, 2, rng=1, dtype=np.float64), nn.Linear(3, 2, rng=1, dtype=np.float64)
    optimiser, reference_optimiser = nn.SGD(model.parameters(), lr=0.5), nn.SGD(reference.parameters(), lr=0.5)
    for epoch in range(2):
        nn.train_epoch(model, optimiser, x, labels, batch_size=4, rng=epoch)
        reference_optimiser.zero_grad()
        _, dlogits = nn.softmax_cross_entropy(reference.forward(x), labels)
        reference.backward(dlogits)
        reference_optimiser.step()
    np.testing.assert_allclose(model.weight.value, reference.weight.value, rtol=1e-12)
