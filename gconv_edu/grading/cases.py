"""Test cases for the convolution exercises: geometries, seeded inputs, and the reference answers.

Each :class:`ConvCase` builds its inputs from its own seed (recorded in every failure message, so a student can
rebuild them with :meth:`ConvCase.inputs`). References come from gconv_edu itself, computed in float64 with the
im2col backend, which the project's own test suite checks against an independent einsum reference.

Besides these visible cases, every grading run draws hidden ones (:func:`hidden_conv_cases` and friends) from a
seed that only the instructor's JSON records: a lookup table of the visible cases, or a data race that tiny channel
counts hide, loses their points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

Pair = tuple[int, int]


@dataclass(frozen=True)
class ConvCase:
    """One convolution problem. ``x``: (n, c_in, h, w); ``weight``: (c_out, c_in // groups, *kernel)."""

    id: str
    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    dtype: str = "float64"
    seed: int = 0

    # ------------------------------------------------------------------ inputs
    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(x, weight, bias) drawn from ``numpy.random.default_rng(seed)``; bias is None when the case has none."""
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.n, self.c_in, self.h, self.w)).astype(self.dtype)
        weight = rng.standard_normal((self.c_out, self.c_in // self.groups, *self.kernel)).astype(self.dtype)
        bias = rng.standard_normal(self.c_out).astype(self.dtype) if self.bias else None
        return x, weight, bias

    def upstream(self) -> np.ndarray:
        """A random upstream gradient dy of the output's shape (never all ones: that hides transposition bugs)."""
        return np.random.default_rng(self.seed + 1000).standard_normal(self.y_shape).astype(self.dtype)

    def forward_args(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> tuple:
        """Arguments of the exercises' ``conv2d_forward(x, weight, bias, stride, padding, dilation, groups)``."""
        return (x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    # ------------------------------------------------------------------ geometry
    def geometry(self):
        """The case's :class:`gconv_edu.geometry.ConvGeometry` (validated)."""
        from ..geometry import ConvGeometry

        return ConvGeometry.from_layer(
            self.c_in,
            self.c_out,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.bias,
            batch=self.n,
            height=self.h,
            width=self.w,
        )

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return self.geometry().y_shape

    @property
    def label(self) -> str:
        """What a failure message prints about the case: its id and seed."""
        return f"case {self.id}, seed {self.seed}"

    # ------------------------------------------------------------------ references (float64)
    def forward_reference(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        from ..api import conv2d

        return conv2d(
            *(None if a is None else a.astype(np.float64) for a in (x, weight, bias)),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            backend="im2col",
        )

    def backward_reference(self, dy: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
        from ..api import conv2d_backward

        return conv2d_backward(
            dy.astype(np.float64),
            x.astype(np.float64),
            weight.astype(np.float64),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            backend="im2col",
        )

    # ------------------------------------------------------------------ controls for diagnosis
    def features(self) -> list[str]:
        """The harder parts of this case, in the order a diagnosis tries switching them off."""
        found = []
        if self.stride != (1, 1):
            found.append("stride")
        if self.dilation != (1, 1):
            found.append("dilation")
        if self.padding != (0, 0):
            found.append("padding")
        if self.groups > 1:
            found.append("groups")
        if self.bias:
            found.append("bias")
        return found

    def without(self, feature: str) -> ConvCase:
        """The same case with one feature switched off (groups=1 keeps C_in and C_out; the weight is redrawn)."""
        off = {"stride": (1, 1), "dilation": (1, 1), "padding": (0, 0), "groups": 1, "bias": False}[feature]
        return dataclasses.replace(self, id=f"{self.id}-no-{feature}", **{feature: off})


# Every feature at once: groups, a rectangular kernel, stride, padding and dilation that differ between H and W.
EVERYTHING = {"groups": 2, "kernel": (2, 3), "stride": (2, 1), "padding": (1, 2), "dilation": (1, 2)}


# Covers: groups 1, >1, depthwise, depthwise with multiplier; stride 2, 3 and (2, 1) on sizes they do not divide;
# padding symmetric and (h, w); dilation 2 and (2, 1); kernels 1x1, 3x3, 2x3, 3x2; H != W; float32 and float64;
# N = 1 and N > 1; bias and no bias. Sizes are tiny: a student's pure-Python loops must finish well inside a second.
FORWARD_CASES = [
    ConvCase("basic", 2, 3, 4, 5, 5, seed=101),
    ConvCase("groups2-pad1", 2, 4, 6, 6, 5, seed=102, groups=2, padding=(1, 1)),
    ConvCase("groups3-kernel2x3", 1, 6, 3, 5, 6, seed=103, groups=3, kernel=(2, 3)),
    ConvCase("depthwise", 2, 4, 4, 5, 6, seed=104, groups=4, padding=(1, 1), bias=False),
    ConvCase("depthwise-multiplier2", 1, 3, 6, 6, 5, seed=105, groups=3, kernel=(3, 2)),
    ConvCase("stride2-uneven", 2, 2, 4, 7, 6, seed=106, stride=(2, 2), padding=(1, 1)),
    ConvCase("stride3-kernel2x3", 1, 4, 2, 8, 9, seed=107, stride=(3, 3), kernel=(2, 3), groups=2),
    ConvCase("pad2x0-kernel3x2", 1, 2, 3, 4, 6, seed=108, padding=(2, 0), kernel=(3, 2)),
    ConvCase("dilation2", 2, 2, 2, 7, 7, seed=109, dilation=(2, 2)),
    ConvCase("dilation2x1-groups2", 1, 4, 4, 7, 6, seed=110, dilation=(2, 1), padding=(1, 1), groups=2),
    ConvCase("float32-groups2", 2, 4, 4, 6, 6, seed=111, groups=2, padding=(1, 1), dtype="float32"),
    ConvCase("kernel1x1-groups2", 2, 4, 6, 3, 4, seed=112, kernel=(1, 1), groups=2),
    ConvCase("everything-float32", 2, 6, 4, 7, 8, seed=113, dtype="float32", **EVERYTHING),
    # Strides that differ between the axes on a non-square kernel: a stride or size taken from the wrong axis shows.
    ConvCase("stride1x3-kernel3x2", 1, 2, 2, 7, 10, seed=115, stride=(1, 3), kernel=(3, 2)),
]

# Numba compiles once per argument-type signature (dtype, bias or None): few cases, both dtypes, both bias kinds.
NUMBA_CASES = [c for c in FORWARD_CASES if c.id in ("basic", "groups3-kernel2x3", "depthwise", "everything-float32")]
# The remaining signature (float32 without bias), on stride (3, 2) with dilation (2, 1), depthwise.
UNEVEN_DEPTHWISE = {"stride": (3, 2), "dilation": (2, 1), "groups": 4, "bias": False, "dtype": "float32"}
NUMBA_CASES.append(ConvCase("stride3-dilation2-float32", 1, 4, 4, 9, 8, seed=114, **UNEVEN_DEPTHWISE))

BACKWARD_CASES = [
    ConvCase("basic", 2, 3, 4, 5, 5, seed=201),
    ConvCase("groups2-pad1", 2, 4, 6, 6, 5, seed=202, groups=2, padding=(1, 1), bias=False),
    ConvCase("depthwise-multiplier2", 2, 3, 6, 5, 6, seed=203, groups=3, kernel=(3, 2), padding=(1, 0)),
    ConvCase("stride2-uneven", 2, 2, 4, 7, 6, seed=204, stride=(2, 2), padding=(1, 1)),
    ConvCase("stride3-kernel2x3", 1, 4, 2, 8, 9, seed=205, stride=(3, 3), kernel=(2, 3), groups=2),
    ConvCase("dilation2", 3, 2, 2, 7, 7, seed=206, dilation=(2, 2)),
    ConvCase("float32-groups2", 2, 4, 4, 6, 6, seed=207, groups=2, padding=(1, 1), dtype="float32"),
    ConvCase("everything", 2, 6, 4, 7, 8, seed=208, **EVERYTHING),
    ConvCase("stride1x3-kernel3x2", 2, 2, 2, 7, 10, seed=209, stride=(1, 3), kernel=(3, 2)),
]


@dataclass(frozen=True)
class Im2colCase:
    """An im2col problem: ``x`` (n, c, h, w) unfolded with the given kernel size, stride, padding, dilation."""

    id: str
    shape: tuple[int, int, int, int]
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    dtype: str = "float64"
    seed: int = 0

    @property
    def label(self) -> str:
        return f"case {self.id}, seed {self.seed}"

    def input(self) -> np.ndarray:
        return np.random.default_rng(self.seed).standard_normal(self.shape).astype(self.dtype)

    def args(self, x: np.ndarray) -> tuple:
        return (x, self.kernel, self.stride, self.padding, self.dilation)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """(N, C*kH*kW, H_out*W_out), rows ordered (channel, kernel row, kernel column), from gconv_edu's im2col."""
        from ..backends.im2col import im2col
        from ..geometry import ConvGeometry

        n, c, h, w = self.shape
        geom = ConvGeometry.from_layer(
            c, 1, self.kernel, self.stride, self.padding, self.dilation, 1, False, batch=n, height=h, width=w
        )
        cols = im2col(x.astype(np.float64), geom)  # (N, C, kH, kW, H_out, W_out)
        return cols.reshape(n, c * geom.kernel_area, geom.out_h * geom.out_w)

    def features(self) -> list[str]:
        return [
            name
            for name, off in (("stride", (1, 1)), ("dilation", (1, 1)), ("padding", (0, 0)))
            if getattr(self, name) != off
        ]

    def without(self, feature: str) -> Im2colCase:
        return dataclasses.replace(
            self, id=f"{self.id}-no-{feature}", **{feature: (1, 1) if feature != "padding" else (0, 0)}
        )


IM2COL_CASES = [
    Im2colCase("basic", (1, 2, 4, 4), (2, 2), seed=301),
    Im2colCase("kernel2x3", (2, 3, 4, 5), (2, 3), seed=302),
    Im2colCase("stride2-uneven", (1, 2, 7, 6), (3, 3), stride=(2, 2), seed=303),
    Im2colCase("padding1x2", (2, 2, 4, 3), (3, 3), padding=(1, 2), seed=304),
    Im2colCase("dilation2x1", (1, 3, 7, 6), (2, 3), dilation=(2, 1), seed=305),
    Im2colCase("everything-float32", (2, 2, 7, 8), (3, 2), (3, 2), (1, 1), (1, 2), "float32", seed=306),
]


# --------------------------------------------------------------------------- hidden cases
# Drawn fresh for every grading run from a seed that only the instructor's JSON records. Within each exercise's
# contract: groups, strides, dilation and padding that differ between the axes, non-square kernels and inputs, both
# dtypes, bias or none; the first case of every draw has C_in/G = 64 (a prange over input channels that races shows
# there, never at the 1-3 channels per group of the visible cases).
HIDDEN_CASES = 4
MAX_CHANNELS_PER_GROUP = 64


def _draw_conv(rng: np.random.Generator, id: str, channels_per_group: int, spatial: int, seed: int) -> ConvCase:
    groups = int(rng.integers(1, 5))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    # At least one output pixel, then up to `spatial` more along each axis.
    h, w = (max(1, e - 2 * p + s * int(rng.integers(0, spatial))) for e, p, s in zip(extent, padding, stride))
    return ConvCase(
        id,
        int(rng.integers(1, 3)),
        groups * channels_per_group,
        groups * int(rng.integers(1, 4)),
        h,
        w,
        kernel,
        stride,
        padding,
        dilation,
        groups,
        bool(rng.integers(0, 2)),
        str(rng.choice(["float32", "float64"])),
        seed=int(rng.integers(0, 2**31)),
    )


def hidden_conv_cases(seed: int, count: int = HIDDEN_CASES, spatial: int = 4) -> list[ConvCase]:
    """``count`` random convolution cases from ``seed`` (the same list for the same seed). Case 0 has C_in/G = 64;
    the others 1 to 64. ``spatial`` bounds the output size (a pure-Python loop must finish in a second)."""
    rng = np.random.default_rng([seed, 1])
    cases = []
    for k in range(count):
        channels = MAX_CHANNELS_PER_GROUP if k == 0 else int(rng.integers(1, MAX_CHANNELS_PER_GROUP + 1))
        cases.append(_draw_conv(rng, f"hidden{k + 1}", channels, spatial, seed))
    return cases


def hidden_summary(case: ConvCase) -> str:
    """What kind of case a hidden case is, without its sizes or seed: 'groups=3, stride, padding, float32'."""
    kinds = [f"groups={case.groups}" if f == "groups" else f for f in case.features()]
    if case.kernel[0] != case.kernel[1]:
        kinds.append("non-square kernel")
    kinds.append(f"C_in/G={case.c_in // case.groups}" if case.c_in // case.groups >= 32 else "")
    return ", ".join(k for k in [*kinds, case.dtype] if k)


def hidden_group_cases(seed: int, count: int = HIDDEN_CASES) -> list[tuple[int, int, int]]:
    """(c_in, c_out, groups) triples for ex2, from ``seed``: G divides both."""
    rng = np.random.default_rng([seed, 2])
    triples = []
    for _ in range(count):
        groups = int(rng.integers(1, 17))
        triples.append((groups * int(rng.integers(1, 9)), groups * int(rng.integers(1, 9)), groups))
    return triples


def hidden_shuffle_cases(seed: int, count: int = HIDDEN_CASES) -> list[tuple[tuple[int, int, int, int], int, str, int]]:
    """(shape, groups, dtype, data seed) for ex5, from ``seed``."""
    rng = np.random.default_rng([seed, 5])
    found = []
    for _ in range(count):
        groups = int(rng.integers(1, 9))
        shape = (
            int(rng.integers(1, 3)),
            groups * int(rng.integers(1, 6)),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 5)),
        )
        found.append((shape, groups, str(rng.choice(["float32", "float64"])), int(rng.integers(0, 2**31))))
    return found
