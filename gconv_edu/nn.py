"""A tiny CNN toolkit with hand-written backprop: just the layers the lessons' experiment needs.

Every layer has ``forward(x) -> y`` (caching what its backward needs) and ``backward(dy) -> dx`` (filling the
``grad`` of its parameters: assigned, not accumulated, so one forward then one backward per step). Layout NCHW.
Parameters are :class:`Parameter` objects (``value`` and ``grad``), initialised from a seed, so a run is repeatable.
:func:`train_epoch`, :func:`predict` and :func:`accuracy` are the few lines of training loop the lessons share.

Pooling reuses :func:`gconv_edu.backends.im2col.im2col` / ``col2im`` with a depthwise :class:`ConvGeometry`, so the
pooling windows follow the same one output-size rule as the convolution:
``H_out = (H - kernel) // stride + 1`` (no padding).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .api import conv2d, conv2d_backward
from .backends import check_backend_name
from .backends.im2col import col2im, im2col
from .geometry import ConvGeometry, IntPair, Padding
from .groups import channel_shuffle, channel_shuffle_backward

__all__ = [
    "SGD",
    "AvgPool2d",
    "BatchNorm2d",
    "ChannelShuffle",
    "Conv2d",
    "Flatten",
    "GlobalAvgPool",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "accuracy",
    "predict",
    "softmax_cross_entropy",
    "train_epoch",
]

SeedLike = int | np.random.Generator | None
_DUMMY_SIZE = 1 << 12  # input side used only to validate a layer's hyper-parameters at construction


@dataclass
class Parameter:
    """A trainable array and its gradient (same shape and dtype)."""

    value: np.ndarray
    name: str = ""
    grad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.grad = np.zeros_like(self.value)


class Module:
    """Base class: ``forward``, ``backward``, ``parameters``, and a train/eval switch (used by BatchNorm2d)."""

    training: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def parameters(self) -> list[Parameter]:
        return [value for value in vars(self).values() if isinstance(value, Parameter)]

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be a positive int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive int (>= 1)")
    return int(value)


def _pair(name: str, value: object) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _positive_int(name, value[0]), _positive_int(name, value[1])
    size = _positive_int(name, value)
    return size, size


def _check_input(layer: Module, x: Any, ndim: int, channels: int | None = None) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{type(layer).__name__}: x must be a numpy.ndarray; got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{type(layer).__name__}: x must be {ndim}-D; got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{type(layer).__name__}: x.shape[1]={x.shape[1]} must equal the layer's channels={channels}")


# --------------------------------------------------------------------------- layers with parameters
class Conv2d(Module):
    """Grouped 2-D convolution layer on any backend (:func:`gconv_edu.conv2d` / :func:`gconv_edu.conv2d_backward`).

    x: (N, C_in, H, W) -> y: (N, C_out, H_out, W_out), ``H_out = (H + 2*pad - dilation*(k - 1) - 1) // stride + 1``.
    weight: (C_out, C_in // groups, kH, kW), He-initialised with fan-in ``C_in // groups * kH * kW``; bias: (C_out,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        backend: str | None = None,
        rng: SeedLike = None,
        dtype: Any = np.float32,
    ) -> None:
        in_channels = _positive_int("in_channels", in_channels)
        out_channels = _positive_int("out_channels", out_channels)
        groups = _positive_int("groups", groups)
        k_h, k_w = _pair("kernel_size", kernel_size)
        # Validate every hyper-parameter now, not at the first forward: a geometry with a large dummy input checks
        # groups, stride, padding and dilation exactly as conv2d will.
        ConvGeometry.from_shapes(
            (1, in_channels, _DUMMY_SIZE, _DUMMY_SIZE),
            (out_channels, in_channels // groups, k_h, k_w),
            None,
            stride,
            padding,
            dilation,
            groups,
        )
        if backend is not None:
            check_backend_name(backend, "backend")
        generator = np.random.default_rng(rng)
        fan_in = in_channels // groups * k_h * k_w
        weight = generator.standard_normal((out_channels, in_channels // groups, k_h, k_w)) * np.sqrt(2.0 / fan_in)
        self.weight = Parameter(weight.astype(dtype), "weight")
        self.bias = Parameter(np.zeros(out_channels, dtype=dtype), "bias") if bias else None
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend=backend)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return conv2d(x, self.weight.value, None if self.bias is None else self.bias.value, **self.options)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, self.weight.grad, db = conv2d_backward(dy, self.x, self.weight.value, **self.options)
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def __repr__(self) -> str:
        k_h, k_w = self.weight.value.shape[2:]
        return f"Conv2d({self.in_channels}, {self.out_channels}, {k_h}x{k_w}, groups={self.groups})"


class Linear(Module):
    """Fully connected layer: x: (N, D_in) -> y = x @ weight.T + bias: (N, D_out); weight: (D_out, D_in)."""

    def __init__(self, in_features: int, out_features: int, rng: SeedLike = None, dtype: Any = np.float32) -> None:
        in_features = _positive_int("in_features", in_features)
        out_features = _positive_int("out_features", out_features)
        generator = np.random.default_rng(rng)
        # Glorot-style scale: keeps the logits' variance about 1 whatever the width.
        weight = generator.standard_normal((out_features, in_features)) / np.sqrt(in_features)
        self.weight = Parameter(weight.astype(dtype), "weight")
        self.bias = Parameter(np.zeros(out_features, dtype=dtype), "bias")

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_input(self, x, 2, self.weight.value.shape[1])
        self.x = x
        return x @ self.weight.value.T + self.bias.value

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.weight.grad = dy.T @ self.x  # (D_out, D_in) = (D_out, N) @ (N, D_in)
        self.bias.grad = dy.sum(axis=0)
        return dy @ self.weight.value  # (N, D_in) = (N, D_out) @ (D_out, D_in)


class BatchNorm2d(Module):
    """Batch normalisation per channel over (N, H, W). x, y: (N, C, H, W); gamma, beta: (C,).

    Training: normalise with the batch's mean and (biased) variance, and update the running statistics
    (``running = (1 - momentum) * running + momentum * batch``, the unbiased variance, as PyTorch does).
    Evaluation: normalise with the running statistics (an affine map, so its backward is a scaling).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5, dtype: Any = np.float32) -> None:
        self.channels = _positive_int("channels", channels)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1]")
        if eps <= 0:
            raise ValueError(f"eps={eps} must be > 0")
        self.momentum, self.eps = momentum, eps
        self.gamma = Parameter(np.ones(channels, dtype=dtype), "gamma")
        self.beta = Parameter(np.zeros(channels, dtype=dtype), "beta")
        self.running_mean = np.zeros(channels, dtype=dtype)
        self.running_var = np.ones(channels, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_input(self, x, 4, self.channels)
        if self.training:
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            count = x.size // self.channels
            unbiased = var * count / max(count - 1, 1)
            self.running_mean = ((1 - self.momentum) * self.running_mean + self.momentum * mean).astype(x.dtype)
            self.running_var = ((1 - self.momentum) * self.running_var + self.momentum * unbiased).astype(x.dtype)
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
        self.x_hat = (x - mean[None, :, None, None]) * self.inv_std[None, :, None, None]
        self.normalised_by_batch = self.training
        return self.gamma.value[None, :, None, None] * self.x_hat + self.beta.value[None, :, None, None]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.gamma.grad = np.sum(dy * self.x_hat, axis=(0, 2, 3))
        self.beta.grad = dy.sum(axis=(0, 2, 3))
        dx_hat = dy * self.gamma.value[None, :, None, None]
        inv_std = self.inv_std[None, :, None, None]
        if not self.normalised_by_batch:
            return dx_hat * inv_std
        # The batch mean and variance depend on every x, hence the two correction terms (mean of dx_hat, and its
        # projection on x_hat): dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
        mean_dx_hat = dx_hat.mean(axis=(0, 2, 3), keepdims=True)
        mean_dx_hat_x_hat = (dx_hat * self.x_hat).mean(axis=(0, 2, 3), keepdims=True)
        return inv_std * (dx_hat - mean_dx_hat - self.x_hat * mean_dx_hat_x_hat)


# --------------------------------------------------------------------------- layers without parameters
class ReLU(Module):
    """y = max(x, 0), any shape; the gradient passes where x > 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.mask


class _Pool2d(Module):
    """Shared windowing of the pooling layers: im2col with a depthwise geometry (weight shape (C, 1, k, k))."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size = _positive_int("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _positive_int("stride", stride)

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> windows: (N, C, k*k, H_out, W_out)."""
        _check_input(self, x, 4)
        n, c = x.shape[:2]
        k = self.kernel_size
        self.geom = ConvGeometry.from_shapes(x.shape, (c, 1, k, k), None, self.stride, 0, 1, groups=c)
        # (N, C, k, k, H_out, W_out) -> (N, C, k*k, H_out, W_out)
        return im2col(x, self.geom).reshape(n, c, k * k, self.geom.out_h, self.geom.out_w)

    def _scatter(self, dwindows: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`_windows`: (N, C, k*k, H_out, W_out) -> (N, C, H, W), overlaps accumulated."""
        n, c, _, h_out, w_out = dwindows.shape
        k = self.kernel_size
        return col2im(dwindows.reshape(n, c, k, k, h_out, w_out), self.geom)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool2d):
    """Max over k x k windows. x: (N, C, H, W) -> (N, C, (H - k) // stride + 1, (W - k) // stride + 1).

    The gradient goes to the (first) maximum of each window only.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        windows = self._windows(x)
        self.argmax = windows.argmax(axis=2)[:, :, None]  # (N, C, 1, H_out, W_out)
        return np.take_along_axis(windows, self.argmax, axis=2)[:, :, 0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h_out, w_out = dy.shape
        dwindows = np.zeros((n, c, self.kernel_size**2, h_out, w_out), dtype=dy.dtype)
        np.put_along_axis(dwindows, self.argmax, dy[:, :, None], axis=2)
        return self._scatter(dwindows)


class AvgPool2d(_Pool2d):
    """Mean over k x k windows. x: (N, C, H, W) -> (N, C, (H - k) // stride + 1, (W - k) // stride + 1)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._windows(x).mean(axis=2)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        share = dy[:, :, None] / self.kernel_size**2  # each of the k*k inputs gets 1/k^2 of the output's gradient
        n, c, h_out, w_out = dy.shape
        return self._scatter(np.broadcast_to(share, (n, c, self.kernel_size**2, h_out, w_out)))


class GlobalAvgPool(Module):
    """Mean over all positions: x: (N, C, H, W) -> (N, C)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_input(self, x, 4)
        self.spatial = x.shape[2:]
        return x.mean(axis=(2, 3))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        h, w = self.spatial
        return np.broadcast_to(dy[:, :, None, None] / (h * w), (*dy.shape, h, w)).copy()


class Flatten(Module):
    """x: (N, ...) -> (N, prod(...)); backward restores the shape."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.shape)


class ChannelShuffle(Module):
    """ShuffleNet's channel shuffle (:func:`gconv_edu.groups.channel_shuffle`). x, y: (N, C, H, W)."""

    def __init__(self, groups: int) -> None:
        self.groups = _positive_int("groups", groups)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return channel_shuffle(x, self.groups)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return channel_shuffle_backward(dy, self.groups)


# --------------------------------------------------------------------------- containers, loss, optimiser
class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. Indexable: ``model[0]`` is the first layer."""

    def __init__(self, *layers: Module) -> None:
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{index}]={layer!r} must be a gconv_edu.nn.Module")
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return "Sequential(\n" + "".join(f"  {layer!r}\n" for layer in self.layers) + ")"


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient.

    logits: (N, K) float; labels: (N,) ints in [0, K) -> (loss: float, dlogits: (N, K)),
    ``dlogits = (softmax(logits) - onehot(labels)) / N``.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim != 2:
        raise ValueError(f"logits must be a 2-D numpy array (N, K); got {getattr(logits, 'shape', type(logits))}")
    labels = np.asarray(labels)
    n, k = logits.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an int array of shape ({n},); got shape {labels.shape}, dtype {labels.dtype}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= k:
        raise ValueError(f"labels must lie in [0, {k}); got range [{labels.min()}, {labels.max()}]")
    shifted = logits - logits.max(axis=1, keepdims=True)  # subtracting the max keeps exp() from overflowing
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -float(log_probs[rows, labels].mean())
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1.0
    return loss, dlogits / n


class SGD:
    """Stochastic gradient descent with momentum and (L2) weight decay, as PyTorch's ``torch.optim.SGD``.

    Per parameter: ``g = grad + weight_decay * value``; ``velocity = momentum * velocity + g``;
    ``value -= lr * velocity``.
    """

    def __init__(
        self, parameters: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        self.parameters = list(parameters)
        if lr <= 0:
            raise ValueError(f"lr={lr} must be > 0")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [np.zeros_like(p.value) for p in self.parameters]

    def step(self) -> None:
        for parameter, velocity in zip(self.parameters, self.velocity):
            gradient = parameter.grad + self.weight_decay * parameter.value
            velocity *= self.momentum
            velocity += gradient
            parameter.value -= (self.lr * velocity).astype(parameter.value.dtype)


# --------------------------------------------------------------------------- training helpers
def train_epoch(
    model: Module, optimiser: SGD, x: np.ndarray, labels: np.ndarray, batch_size: int, rng: SeedLike = None
) -> float:
    """One pass over (x, labels) in shuffled mini-batches (the order drawn from ``rng``); returns the mean loss.

    x: (N, ...) ; labels: (N,) ints. The model is put in training mode.
    """
    batch_size = _positive_int("batch_size", batch_size)
    model.train()
    order = np.random.default_rng(rng).permutation(len(x))
    losses = []
    for start in range(0, len(x), batch_size):
        batch = order[start : start + batch_size]
        loss, dlogits = softmax_cross_entropy(model.forward(x[batch]), labels[batch])
        model.backward(dlogits)
        optimiser.step()
        losses.append(loss)
    return float(np.mean(losses))


def predict(model: Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits (N, K) for x: (N, ...), in evaluation mode, batch by batch."""
    model.eval()
    return np.concatenate([model.forward(x[start : start + batch_size]) for start in range(0, len(x), batch_size)])


def accuracy(model: Module, x: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``labels`` (N,) that the model's largest logit gets right."""
    return float(np.mean(predict(model, x).argmax(axis=1) == labels))
