"""One validated, immutable description of a grouped 2-D convolution.

Every backend receives a :class:`ConvGeometry`; none re-derives a shape on its own.
This module imports nothing from the rest of the package (it is the bottom of the stack).

Every index rule lives here: output sizes (direct and transposed), pad widths, the interior crop, the input window
of an output pixel and the input slice of a kernel tap. Output size (the one formula used everywhere)::

    H_out = (H + pad_top + pad_bottom - dil_h * (kH - 1) - 1) // sh + 1
    W_out = (W + pad_left + pad_right - dil_w * (kW - 1) - 1) // sw + 1

Glossary (the one vocabulary of every backend, kernel and lesson; DESIGN.md has the same list):

    N batch, G groups, C_in / C_out channels, in_per_group = C_in/G, out_per_group = C_out/G,
    kH, kW kernel size, H_out, W_out output size, (oh, ow) output pixel, k filter (output channel),
    c channel within the group, ci = g*in_per_group + c absolute input channel, g group,
    (p, q) kernel tap, stride (sh, sw), dilation (dil_h, dil_w), padding pad_top, pad_bottom, pad_left, pad_right,
    gradients dy (upstream), dx, dw, db.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

IntPair = int | tuple[int, int]
Padding = int | tuple[int, int] | str


# Index arithmetic (Numba's int64, CUDA's 64-bit path, NumPy's intp) must hold every product of these: a value at or
# above this is refused up front, naming the parameter, instead of wrapping around inside a kernel.
MAX_INDEX = 2**62


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    """Output length along one axis: ``(size + pads - dilation*(kernel-1) - 1) // stride + 1``."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """Transposed convolution's output length along one axis (the inverse of :func:`conv_output_size`):

    ``(size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1``.
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def is_int(value: object) -> bool:
    """An integer that is not a bool (``stride=True`` is a bug, not a request for stride 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _in_range(name: str, shown: object, number: int, minimum: int, expected: str = "") -> None:
    if number < minimum:
        raise ValueError(f"{name}={shown!r} must be {expected or f'>= {minimum}'}")
    if number >= MAX_INDEX:
        raise ValueError(f"{name}={shown!r} must be < 2**62 (the index arithmetic of every backend holds 63 bits)")


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (and < 2**62), else TypeError/ValueError naming ``name``."""
    if not is_int(value):
        raise TypeError(f"{name}={value!r} must be an int >= {minimum}; got {type(value).__name__}")
    _in_range(name, value, int(value), minimum, "a positive int (>= 1)" if minimum == 1 else "")
    return int(value)


def pair(name: str, value: object, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each >= ``minimum`` (and < 2**62), naming ``name`` if not."""
    if is_int(value):
        items = (int(value), int(value))
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}={value!r} must be an int or an (h, w) pair; got {len(value)} values")
        if not all(is_int(v) for v in value):
            raise TypeError(f"{name}={value!r} must contain ints; got types {[type(v).__name__ for v in value]}")
        items = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name}={value!r} must be an int or an (h, w) pair of ints; got {type(value).__name__}")
    for item in items:
        _in_range(name, value, item, minimum)
    return items


def _shape(name: str, shape: object, ndim: int) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    if len(shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {shape} ({len(shape)}-D)")
    return shape


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes and hyper-parameters of one grouped convolution, validated.

    Layout NCHW. ``x``: (N, C_in, H, W); ``weight``: (C_out, C_in // groups, kH, kW); ``y``: (N, C_out, H_out, W_out).
    Padding is stored per side, (top, bottom, left, right), so "same" with an odd total is exact.
    """

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel_h: int
    kernel_w: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    groups: int
    has_bias: bool = False

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_shapes(
        cls,
        x_shape: tuple[int, ...],
        weight_shape: tuple[int, ...],
        bias_shape: tuple[int, ...] | None = None,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
    ) -> ConvGeometry:
        """Validate everything and return the geometry; raise ``ValueError``/``TypeError`` naming the parameter.

        Shapes: ``x_shape`` (N, C_in, H, W), ``weight_shape`` (C_out, C_in // groups, kH, kW), ``bias_shape`` (C_out,).
        """
        n, c_in, h, w = _shape("x", x_shape, 4)
        c_out, c_in_per_group, k_h, k_w = _shape("weight", weight_shape, 4)
        groups = positive_int("groups", groups)
        stride_hw = pair("stride", stride, 1)
        dilation_hw = pair("dilation", dilation, 1)
        if min(n, c_in, h, w) < 1:
            raise ValueError(f"x.shape={tuple(x_shape)} must have every dimension >= 1")
        if min(c_out, c_in_per_group, k_h, k_w) < 1:
            raise ValueError(f"weight.shape={tuple(weight_shape)} must have every dimension >= 1")
        if c_in % groups:
            raise ValueError(f"groups={groups} must divide C_in={c_in} (x.shape[1])")
        if c_out % groups:
            raise ValueError(f"groups={groups} must divide C_out={c_out} (weight.shape[0])")
        if c_in_per_group != c_in // groups:
            raise ValueError(
                f"weight.shape[1]={c_in_per_group} must equal C_in // groups = {c_in} // {groups} = {c_in // groups}"
            )
        if bias_shape is not None and tuple(int(s) for s in bias_shape) != (c_out,):
            raise ValueError(f"bias.shape={tuple(bias_shape)} must be (C_out,) = ({c_out},)")
        pads = _padding(padding, stride_hw, dilation_hw, (k_h, k_w))
        geometry = cls(n, c_in, c_out, h, w, k_h, k_w, stride_hw, dilation_hw, pads, groups, bias_shape is not None)
        if geometry.out_h < 1 or geometry.out_w < 1:
            raise ValueError(
                f"kernel (dilated extent {geometry.dilated_kernel}) is larger than the padded input "
                f"{(h + pads[0] + pads[1], w + pads[2] + pads[3])} (x.shape={tuple(x_shape)}, padding={padding!r}); "
                f"the output would be {geometry.out_h}x{geometry.out_w}"
            )
        return geometry

    @classmethod
    def from_layer(
        cls,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        batch: int = 1,
        height: int | None = None,
        width: int | None = None,
    ) -> ConvGeometry:
        """The geometry of a layer's hyper-parameters (as ``nn.Conv2d`` takes them), validated with no input at hand.

        ``height``/``width`` default to the smallest input the layer accepts (one output pixel per axis at least),
        so a layer can be checked when it is built; pass the real sizes to get the real output shape.
        Shapes: x (batch, in_channels, height, width); weight (out_channels, in_channels // groups, kH, kW).
        """
        in_channels = positive_int("in_channels", in_channels)
        out_channels = positive_int("out_channels", out_channels)
        groups = positive_int("groups", groups)
        if in_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels}")
        if out_channels % groups:
            raise ValueError(f"groups={groups} must divide out_channels={out_channels}")
        k_h, k_w = pair("kernel_size", kernel_size, 1)
        dil_h, dil_w = pair("dilation", dilation, 1)
        pads = _padding(padding, pair("stride", stride, 1), (dil_h, dil_w), (k_h, k_w))
        smallest = (
            max(1, dil_h * (k_h - 1) + 1 - pads[0] - pads[1]),
            max(1, dil_w * (k_w - 1) + 1 - pads[2] - pads[3]),
        )
        size = (smallest[0] if height is None else height, smallest[1] if width is None else width)
        return cls.from_shapes(
            (batch, in_channels, *size),
            (out_channels, in_channels // groups, k_h, k_w),
            (out_channels,) if bias else None,
            stride,
            padding,
            dilation,
            groups,
        )

    # ----------------------------------------------------------------- index rules
    @property
    def pad_widths(self) -> tuple[tuple[int, int], ...]:
        """``xp.pad(x, geom.pad_widths)``: (N, C, H, W) -> (N, C, H + pad_top + pad_bottom, W + pad_left + pad_right)."""  # noqa: E501
        pad_top, pad_bottom, pad_left, pad_right = self.padding
        return ((0, 0), (0, 0), (pad_top, pad_bottom), (pad_left, pad_right))

    @property
    def interior(self) -> tuple[slice, slice, slice, slice]:
        """``xpad[geom.interior]``: the unpadded (N, C, H, W) part of a padded array (drops the padding's gradient)."""
        pad_top, _, pad_left, _ = self.padding
        return (slice(None), slice(None), slice(pad_top, pad_top + self.height), slice(pad_left, pad_left + self.width))

    def window(self, oh: int, ow: int) -> tuple[slice, slice]:
        """Rows and columns of the padded input that output pixel (oh, ow) reads: kH x kW taps, dilation included."""
        (sh, sw), (dil_h, dil_w) = self.stride, self.dilation
        extent_h, extent_w = self.dilated_kernel
        return slice(oh * sh, oh * sh + extent_h, dil_h), slice(ow * sw, ow * sw + extent_w, dil_w)

    def tap(self, p: int, q: int) -> tuple[slice, slice]:
        """Rows and columns of the padded input that kernel tap (p, q) reads for every output pixel: H_out x W_out."""
        (sh, sw), (dil_h, dil_w) = self.stride, self.dilation
        return (
            slice(p * dil_h, p * dil_h + sh * (self.out_h - 1) + 1, sh),
            slice(q * dil_w, q * dil_w + sw * (self.out_w - 1) + 1, sw),
        )

    # ----------------------------------------------------------------- derived sizes
    @property
    def in_channels_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_channels_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def kernel_area(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def dilated_kernel(self) -> tuple[int, int]:
        """Extent of the kernel on the input once dilated: ``dilation*(k-1) + 1`` per axis."""
        return (self.dilation[0] * (self.kernel_h - 1) + 1, self.dilation[1] * (self.kernel_w - 1) + 1)

    @property
    def padded_size(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        return (self.height + top + bottom, self.width + left + right)

    @property
    def out_h(self) -> int:
        top, bottom, _, _ = self.padding
        return conv_output_size(self.height, self.kernel_h, self.stride[0], top, bottom, self.dilation[0])

    @property
    def out_w(self) -> int:
        _, _, left, right = self.padding
        return conv_output_size(self.width, self.kernel_w, self.stride[1], left, right, self.dilation[1])

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels_per_group, self.kernel_h, self.kernel_w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_channels, self.out_h, self.out_w)

    def with_explicit_padding(self) -> ConvGeometry:
        """The same convolution on the input already zero-padded: (H + top + bottom, W + left + right), no padding.

        Same output shape and values: for backends whose loops skip padding taps, this is how they still compute
        ``inf * 0 = NaN`` there, as the definition does (see the backends' handling of non-finite weights and dy).
        """
        padded_h, padded_w = self.padded_size
        return replace(self, height=padded_h, width=padded_w, padding=(0, 0, 0, 0))

    @property
    def is_depthwise(self) -> bool:
        """One input channel per group (MobileNet); the channel multiplier is ``out_channels_per_group``."""
        return self.in_channels_per_group == 1 and self.groups > 1

    # ----------------------------------------------------------------- costs
    @property
    def params(self) -> int:
        """Weights plus biases: ``C_out * (C_in/G) * kH * kW (+ C_out)``, i.e. G times fewer than dense."""
        return self.out_channels * self.in_channels_per_group * self.kernel_area + (
            self.out_channels if self.has_bias else 0
        )

    @property
    def macs(self) -> int:
        """Multiply-adds of the forward pass for the whole batch: ``N * C_out * H_out * W_out * (C_in/G) * kH * kW``."""
        return self.batch * self.out_channels * self.out_h * self.out_w * self.in_channels_per_group * self.kernel_area

    @property
    def flops(self) -> int:
        """Forward floating-point operations, counting a multiply-add as 2 (bias adds not counted)."""
        return 2 * self.macs

    @property
    def backward_flops(self) -> int:
        """dx and dw each cost as much as the forward pass (db is negligible)."""
        return 2 * self.flops

    def min_bytes(self, itemsize: int, backward: bool = False) -> int:
        """Compulsory memory traffic in bytes, each array touched once.

        Forward: read x and weight, write y. Forward+backward adds: read dy, x and weight, write dx and dw.
        """
        x_size = self.batch * self.in_channels * self.height * self.width
        w_size = self.out_channels * self.in_channels_per_group * self.kernel_area
        y_size = self.batch * self.out_channels * self.out_h * self.out_w
        forward = x_size + w_size + y_size
        return itemsize * (forward + (y_size + 2 * x_size + 2 * w_size if backward else 0))

    def describe(self) -> str:
        return (
            f"N={self.batch} C_in={self.in_channels} C_out={self.out_channels} {self.height}x{self.width} "
            f"k={self.kernel_h}x{self.kernel_w} stride={self.stride} pad={self.padding} dil={self.dilation} "
            f"G={self.groups}"
        )


def _padding(
    padding: Padding, stride: tuple[int, int], dilation: tuple[int, int], kernel: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Padding per side (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1 (as in PyTorch); got stride={stride}")
            sides = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                # PyTorch puts the odd extra row/column on the bottom/right.
                sides += [total // 2, total - total // 2]
            return (sides[0], sides[1], sides[2], sides[3])
        raise ValueError(f"padding={padding!r} must be an int, an (h, w) pair, 'valid' or 'same'")
    pad_h, pad_w = pair("padding", padding, 0)
    return (pad_h, pad_h, pad_w, pad_w)
