"""A tiny CNN toolkit with hand-written backprop: just the layers the lessons' experiment needs, as PyTorch names them.

Every layer has ``forward(x) -> y`` (caching what its backward needs) and ``backward(dy) -> dx``, which **adds** the
gradients of its parameters to their ``grad`` (they accumulate, as in PyTorch: call ``zero_grad()`` before each
backward; :func:`train_epoch` does). Layout NCHW. Parameters are :class:`Parameter` objects (``value`` and ``grad``),
initialised from a seed, so a run is repeatable. Every module has ``named_parameters()``, ``parameters()``,
``zero_grad()``, ``train()`` / ``eval()``, ``state_dict()`` / ``load_state_dict()`` (PyTorch's keys, copied arrays),
and a printed form that shows every hyper-parameter (see :mod:`gconv_edu.nn_core`). Save and load a model with::

    np.savez("model.npz", **model.state_dict())
    with np.load("model.npz") as saved: model.load_state_dict(saved)

:func:`train_epoch`, :func:`predict` and :func:`accuracy` are the few lines of training loop the lessons share.
Non-finite values behave as in PyTorch: ``ReLU`` maps -inf to 0 and passes NaN, and its gradient is 0 wherever
x <= 0, whatever dy holds there.

Pooling reuses :func:`gconv_edu.backends.im2col.im2col` / ``col2im`` with a depthwise :class:`ConvGeometry`, so the
pooling windows follow the same one output-size rule as the convolution:
``H_out = (H - kernel) // stride + 1`` (no padding).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from .api import conv2d, conv2d_backward
from .backends import check_backend_name
from .backends.im2col import col2im, im2col
from .geometry import ConvGeometry, IntPair, Padding, pair, positive_int
from .groups import channel_shuffle, channel_shuffle_backward
from .nn_core import IncompatibleKeys, Module, Parameter, Sequential, check_input

__all__ = [
    "SGD",
    "AvgPool2d",
    "BatchNorm2d",
    "ChannelShuffle",
    "Conv2d",
    "Flatten",
    "GlobalAvgPool",
    "IncompatibleKeys",
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


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} must be a bool; got {type(value).__name__}")
    return bool(value)


def _float_dtype(dtype: Any) -> np.dtype:
    """float32 or float64 (the dtypes conv2d computes in), else TypeError naming ``dtype``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        raise TypeError(f"dtype={getattr(resolved, 'name', dtype)} must be float32 or float64")
    return resolved


def _dtype_repr(dtype: np.dtype) -> str:
    """``, dtype='float64'`` when not the default float32 (PyTorch likewise prints only what differs)."""
    return "" if dtype == np.float32 else f", dtype={dtype.name!r}"


# --------------------------------------------------------------------------- layers with parameters
class Conv2d(Module):
    """Grouped 2-D convolution layer on any backend (:func:`gconv_edu.conv2d` / :func:`gconv_edu.conv2d_backward`).

    x: (N, C_in, H, W) -> y: (N, C_out, H_out, W_out), ``H_out = (H + 2*pad - dilation*(k - 1) - 1) // stride + 1``.
    weight: (C_out, C_in // groups, kH, kW), He-initialised with fan-in ``C_in // groups * kH * kW``; bias: (C_out,).
    The hyper-parameters are checked when the layer is built (:meth:`ConvGeometry.from_layer`, no input needed).
    ``backend=None`` means the default at call time: ``use_backend(...)``, then ``GCONV_BACKEND``, then ``"auto"``.
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
        has_bias, dtype = _bool("bias", bias), _float_dtype(dtype)
        geom = ConvGeometry.from_layer(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        if backend is not None:
            check_backend_name(backend, "backend")
        self.in_channels, self.out_channels, self.groups = geom.in_channels, geom.out_channels, geom.groups
        self.kernel_size = (geom.kernel_h, geom.kernel_w)
        self.stride, self.dilation = geom.stride, geom.dilation
        self.padding = padding if isinstance(padding, str) else pair("padding", padding, 0)
        self.backend, self.dtype = backend, dtype
        generator = np.random.default_rng(rng)
        fan_in = geom.in_channels_per_group * geom.kernel_area
        weight_shape = (geom.out_channels, geom.in_channels_per_group, geom.kernel_h, geom.kernel_w)
        weight = generator.standard_normal(weight_shape) * np.sqrt(2.0 / fan_in)
        self.weight = Parameter(weight.astype(dtype), "weight")
        self.bias = Parameter(np.zeros(geom.out_channels, dtype=dtype), "bias") if has_bias else None

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments every call of conv2d / conv2d_backward gets."""
        return dict(
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups, backend=self.backend
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return conv2d(x, self.weight.value, None if self.bias is None else self.bias.value, **self.options)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dw, db = conv2d_backward(dy, self.x, self.weight.value, **self.options)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        dilation = "" if self.dilation == (1, 1) else f", dilation={self.dilation}"  # as PyTorch: only when not 1
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}{dilation}, groups={self.groups}, bias={self.bias is not None}, "
            f"backend={self.backend!r}{_dtype_repr(self.dtype)}"
        )


class Linear(Module):
    """Fully connected layer: x: (N, D_in) -> y = x @ weight.T + bias: (N, D_out); weight: (D_out, D_in)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: SeedLike = None, dtype: Any = np.float32
    ) -> None:
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        has_bias, self.dtype = _bool("bias", bias), _float_dtype(dtype)
        generator = np.random.default_rng(rng)
        # Glorot-style scale: keeps the logits' variance about 1 whatever the width.
        weight = generator.standard_normal((self.out_features, self.in_features)) / np.sqrt(self.in_features)
        self.weight = Parameter(weight.astype(self.dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_features, dtype=self.dtype), "bias") if has_bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_input(self, x, 2, self.in_features)
        self.x = x
        y = x @ self.weight.value.T
        return y if self.bias is None else y + self.bias.value

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.weight.accumulate(dy.T @ self.x)  # (D_out, D_in) = (D_out, N) @ (N, D_in)
        if self.bias is not None:
            self.bias.accumulate(dy.sum(axis=0))
        return dy @ self.weight.value  # (N, D_in) = (N, D_out) @ (D_out, D_in)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
            f"{_dtype_repr(self.dtype)}"
        )


class BatchNorm2d(Module):
    """Batch normalisation per channel over (N, H, W). x, y: (N, C, H, W); weight (gamma), bias (beta): (C,).

    Training: normalise with the batch's mean and (biased) variance, and update the running statistics
    (``running = (1 - momentum) * running + momentum * batch``, the unbiased variance, as PyTorch does); a batch with
    one value per channel (N*H*W == 1) has no variance and is refused, as PyTorch refuses it.
    Evaluation: normalise with the running statistics (an affine map, so its backward is a scaling).
    State dict: ``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked`` (PyTorch's keys).
    """

    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = np.float32) -> None:
        # (channels, eps, momentum): torch's positional order, so BatchNorm2d(C, 1e-3, 0.2) means the same in both.
        self.channels = positive_int("channels", channels)
        for name, value in (("momentum", momentum), ("eps", eps)):
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise TypeError(f"{name}={value!r} must be a real number; got {type(value).__name__}")
        if not 0.0 <= momentum <= 1.0:  # also refuses NaN
            raise ValueError(f"momentum={momentum} must be in [0, 1]")
        if not 0.0 < eps < np.inf:
            raise ValueError(f"eps={eps} must be > 0 and finite")
        self.momentum, self.eps, self.dtype = float(momentum), float(eps), _float_dtype(dtype)
        self.weight = Parameter(np.ones(channels, dtype=self.dtype), "weight")
        self.bias = Parameter(np.zeros(channels, dtype=self.dtype), "bias")
        self.running_mean = np.zeros(channels, dtype=self.dtype)
        self.running_var = np.ones(channels, dtype=self.dtype)
        self.num_batches_tracked = np.array(0, dtype=np.int64)

    @property
    def gamma(self) -> Parameter:
        """The scale (PyTorch's ``weight``)."""
        return self.weight

    @property
    def beta(self) -> Parameter:
        """The shift (PyTorch's ``bias``)."""
        return self.bias

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_input(self, x, 4, self.channels)
        if self.training:
            count = x.size // self.channels
            if count == 1:
                raise ValueError(
                    f"BatchNorm2d: expected more than 1 value per channel when training; got x.shape={x.shape} "
                    "(N*H*W = 1: the batch variance is undefined; use eval() or a larger batch)"
                )
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            unbiased = var * count / (count - 1)
            self.running_mean = ((1 - self.momentum) * self.running_mean + self.momentum * mean).astype(x.dtype)
            self.running_var = ((1 - self.momentum) * self.running_var + self.momentum * unbiased).astype(x.dtype)
            self.num_batches_tracked = self.num_batches_tracked + 1
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
        self.x_hat = (x - mean[None, :, None, None]) * self.inv_std[None, :, None, None]
        self.normalised_by_batch = self.training
        return self.weight.value[None, :, None, None] * self.x_hat + self.bias.value[None, :, None, None]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.weight.accumulate(np.sum(dy * self.x_hat, axis=(0, 2, 3)))
        self.bias.accumulate(dy.sum(axis=(0, 2, 3)))
        dx_hat = dy * self.weight.value[None, :, None, None]
        inv_std = self.inv_std[None, :, None, None]
        if not self.normalised_by_batch:
            return dx_hat * inv_std
        # The batch mean and variance depend on every x, hence the two correction terms (mean of dx_hat, and its
        # projection on x_hat): dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
        mean_dx_hat = dx_hat.mean(axis=(0, 2, 3), keepdims=True)
        mean_dx_hat_x_hat = (dx_hat * self.x_hat).mean(axis=(0, 2, 3), keepdims=True)
        return inv_std * (dx_hat - mean_dx_hat - self.x_hat * mean_dx_hat_x_hat)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, momentum={self.momentum}{_dtype_repr(self.dtype)}"


# --------------------------------------------------------------------------- layers without parameters
class ReLU(Module):
    """y = max(x, 0), any shape, with PyTorch's answers on non-finite values.

    Forward: relu(-inf) = 0, NaN passes, -0.0 stays -0.0 (``x < 0 ? 0 : x``, PyTorch's clamp).
    Backward: dx = 0 where x <= 0, whatever dy is there (an inf or NaN dy gives 0, not NaN: a select, not a product);
    dx = dy elsewhere, NaN x included (PyTorch's ``threshold_backward``).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.blocked = x <= 0  # NaN <= 0 is False: the gradient passes where x is NaN, as in PyTorch
        return np.where(x < 0, np.zeros((), dtype=x.dtype), x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if dy.shape != self.blocked.shape:
            raise ValueError(f"ReLU: dy.shape={dy.shape} must equal the forward input's shape {self.blocked.shape}")
        return np.where(self.blocked, np.zeros((), dtype=dy.dtype), dy)


class _Pool2d(Module):
    """Shared windowing of the pooling layers: im2col with a depthwise geometry (weight shape (C, 1, k, k))."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else positive_int("stride", stride)

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> windows: (N, C, k*k, H_out, W_out)."""
        check_input(self, x, 4)
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

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


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
        check_input(self, x, 4)
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
        self.groups = positive_int("groups", groups)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return channel_shuffle(x, self.groups)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return channel_shuffle_backward(dy, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


# --------------------------------------------------------------------------- loss, optimiser
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
        if not 0.0 < lr < np.inf:  # also refuses NaN
            raise ValueError(f"lr={lr} must be > 0 and finite")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        if not 0.0 <= weight_decay < np.inf:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0 and finite")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [np.zeros_like(p.value) for p in self.parameters]

    def zero_grad(self) -> None:
        """Set the ``grad`` of every parameter this optimiser updates to zeros (``torch.optim.Optimizer.zero_grad``)."""
        for parameter in self.parameters:
            parameter.grad = np.zeros_like(parameter.value)

    def step(self) -> None:
        """One update of every parameter from its current ``grad``."""
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

    x: (N, ...) ; labels: (N,) ints. The model is put in training mode. Each step is
    ``zero_grad(); forward; backward; step`` (gradients accumulate, so each step starts from zeros).
    """
    batch_size = positive_int("batch_size", batch_size)
    model.train()
    order = np.random.default_rng(rng).permutation(len(x))
    losses = []
    for start in range(0, len(x), batch_size):
        batch = order[start : start + batch_size]
        model.zero_grad()
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
