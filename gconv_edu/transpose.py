"""Grouped transposed convolution, built from the convolution's own forward and backward.

A convolution ``y = conv2d(x, w)`` is a linear map ``A_w`` of its input. Its transpose ``A_w^T`` is exactly what
``conv2d_backward`` computes for ``dx``, so the three passes of a transposed convolution are the convolution's passes
with roles swapped::

    conv_transpose2d(x, w)      = A_w^T x  = conv2d_backward(dy=x, ...).dx      (scatter each input pixel)
    its dx, given dy            = A_w dy   = conv2d(dy, w)                      (gather: a plain convolution)
    its dw, given dy            = conv2d_backward(dy=x, x=dy, w).dw             (<dy, A_w^T x> = <A_w dy, x>)

The weight keeps PyTorch's layout for a transposed convolution, ``(C_in, C_out // groups, kH, kW)``: it is the
weight of the adjoint convolution, which maps C_out channels to C_in. Output size (the inverse of the convolution's)::

    H_out = (H - 1) * stride_h - 2 * pad_h + dilation_h * (kH - 1) + output_padding_h + 1       (likewise W_out)

``output_padding`` picks among the output sizes that the same convolution maps back to H; PyTorch requires it to be
smaller than the stride or the dilation. Where it is not smaller than the stride (only possible with dilation > 1), the
adjoint convolution's output is taller than x: x is zero-padded at the bottom/right to match, which adds nothing.
"""

from __future__ import annotations

from typing import Any

from .api import _check_arrays, conv2d, conv2d_backward
from .arrays import array_module
from .geometry import ConvGeometry, IntPair, conv_transpose_output_size, pair, positive_int

__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "conv_transpose_output_size"]


def _adjoint_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    stride: IntPair,
    padding: IntPair,
    output_padding: IntPair,
    groups: int,
    dilation: IntPair,
) -> tuple[ConvGeometry, tuple[int, int]]:
    """Validate a transposed convolution; return the geometry of its adjoint convolution and the (H, W) of x.

    The adjoint convolution maps the transposed output (N, C_out, H_out, W_out) to (N, C_in, H', W'), H' >= H.
    """
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C_in, H, W); got shape {tuple(x_shape)}")
    if len(weight_shape) != 4:
        raise ValueError(f"weight must be 4-D (C_in, C_out // groups, kH, kW); got shape {tuple(weight_shape)}")
    groups = positive_int("groups", groups)
    n, c_in, h, w = (int(s) for s in x_shape)
    w_in, out_per_group, k_h, k_w = (int(s) for s in weight_shape)
    if w_in != c_in:
        raise ValueError(
            f"weight.shape[0]={w_in} must equal C_in={c_in} (x.shape[1]); layout (C_in, C_out // groups, kH, kW)"
        )
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in} (x.shape[1])")
    c_out = out_per_group * groups
    if bias_shape is not None and tuple(int(s) for s in bias_shape) != (c_out,):
        raise ValueError(f"bias.shape={tuple(bias_shape)} must be (C_out,) = ({c_out},) = (weight.shape[1] * groups,)")
    if isinstance(padding, str):
        raise ValueError(f"padding={padding!r} must be an int or an (h, w) pair for a transposed convolution")
    stride_hw, dilation_hw = pair("stride", stride, 1), pair("dilation", dilation, 1)
    pad_hw, out_pad_hw = pair("padding", padding, 0), pair("output_padding", output_padding, 0)
    for axis in range(2):
        if out_pad_hw[axis] >= max(stride_hw[axis], dilation_hw[axis]):
            raise ValueError(
                f"output_padding={output_padding!r} must be smaller than the stride ({stride_hw[axis]}) or the "
                f"dilation ({dilation_hw[axis]}) along each axis, as PyTorch requires"
            )
    out_h, out_w = (
        conv_transpose_output_size(size, k, s, p, op, d)
        for size, k, s, p, op, d in zip((h, w), (k_h, k_w), stride_hw, pad_hw, out_pad_hw, dilation_hw)
    )
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"padding={padding!r} is too large for x.shape={tuple(x_shape)} and kernel {k_h}x{k_w}: "
            f"the output would be {out_h}x{out_w}"
        )
    geom = ConvGeometry.from_shapes(
        (n, c_out, out_h, out_w), weight_shape, None, stride_hw, pad_hw, dilation_hw, groups
    )
    return geom, (h, w)


def _adjoint_options(geom: ConvGeometry, backend: str | None) -> dict[str, Any]:
    """Keyword arguments of conv2d / conv2d_backward for the adjoint convolution (already validated)."""
    top, _, left, _ = geom.padding
    return dict(stride=geom.stride, padding=(top, left), dilation=geom.dilation, groups=geom.groups, backend=backend)


def _pad_to(x: Any, height: int, width: int) -> Any:
    """Zero-pad (N, C, H, W) at the bottom/right to (N, C, height, width); x itself when it already has that size."""
    if x.shape[2:] == (height, width):
        return x
    padded = array_module(x).zeros((*x.shape[:2], height, width), dtype=x.dtype)
    padded[:, :, : x.shape[2], : x.shape[3]] = x
    return padded


def conv_transpose2d(
    x: Any,
    weight: Any,
    bias: Any | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
    backend: str | None = None,
) -> Any:
    """Grouped transposed convolution ("deconvolution"), NCHW, as ``torch.nn.functional.conv_transpose2d``.

    Positional arguments in torch's order: ``(x, weight, bias, stride, padding, output_padding, groups, dilation)``
    (note ``groups`` before ``dilation`` here, unlike :func:`gconv_edu.conv2d`, exactly as in PyTorch).

    Inputs:
        x: (N, C_in, H, W), float32 or float64
        weight: (C_in, C_out // groups, kH, kW), same dtype as x
        bias: (C_out,) or None
        stride, dilation: int or (h, w), each >= 1; padding: int or (h, w) >= 0
        output_padding: int or (h, w), each smaller than the stride or the dilation on its axis
        groups: positive int dividing C_in; backend: as in :func:`gconv_edu.conv2d`
    Returns:
        y: (N, C_out, H_out, W_out),
        ``H_out = (H - 1) * stride_h - 2 * pad_h + dilation_h * (kH - 1) + output_padding_h + 1`` (likewise W_out).

    Computed as the input gradient of the adjoint convolution (``conv2d_backward``); that call also computes a weight
    gradient which is thrown away, a doubling of the work that keeps this module to the convolution's own passes.
    """
    _check_arrays(x=x, weight=weight, bias=bias)
    geom, _ = _adjoint_geometry(
        x.shape, weight.shape, None if bias is None else bias.shape, stride, padding, output_padding, groups, dilation
    )
    options = _adjoint_options(geom, backend)
    x_padded = _pad_to(x, geom.out_h, geom.out_w)  # (N, C_in, H', W'): the adjoint convolution's output shape
    unused_input = array_module(x).zeros(geom.x_shape, dtype=x.dtype)  # (N, C_out, H_out, W_out), only for dw
    y, _, _ = conv2d_backward(x_padded, unused_input, weight, **options)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward(
    dy: Any,
    x: Any,
    weight: Any,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of a loss through :func:`conv_transpose2d`, given ``dy = dL/dy``.

    Inputs:
        dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_in, C_out // groups, kH, kW); one dtype.
        stride, padding, output_padding, groups, dilation, backend: as in :func:`conv_transpose2d`.
    Returns:
        dx: (N, C_in, H, W) = conv2d(dy, weight) (cropped to H x W),
        dw: (C_in, C_out // groups, kH, kW) = the convolution's weight gradient with x and dy swapped,
        db: (C_out,) = dy summed over N, H_out, W_out (always returned).
    """
    _check_arrays(dy=dy, x=x, weight=weight)
    geom, (h, w) = _adjoint_geometry(x.shape, weight.shape, None, stride, padding, output_padding, groups, dilation)
    if tuple(dy.shape) != geom.x_shape:
        raise ValueError(f"dy.shape={tuple(dy.shape)} must be the output shape {geom.x_shape} (N, C_out, H_out, W_out)")
    options = _adjoint_options(geom, backend)
    dx = conv2d(dy, weight, None, **options)
    if dx.shape[2:] != (h, w):
        dx = dx[:, :, :h, :w].copy()  # the rows past H met only x's zero padding
    _, dw, _ = conv2d_backward(_pad_to(x, geom.out_h, geom.out_w), dy, weight, **options)
    return dx, dw, dy.sum(axis=(0, 2, 3))
