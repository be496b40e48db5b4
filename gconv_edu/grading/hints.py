"""Known mistakes, recognised from a wrong answer, each named in a short hint.

Two kinds of evidence:

* the wrong answer equals the reference answer of a *mutated* problem (kernel flipped, padding on one side, groups
  read as interleaved channels, dw divided by N, db as a mean, ...), or has the shape a mutated geometry would give
  (stride ignored, kH and kW swapped, ...);
* isolation: the student's code is run again on the same case with one feature switched off (stride, dilation,
  padding, groups, bias); if that passes, the feature is where the mistake is.

Every hint is a function returning a string or None; :func:`gconv_edu.grading.checks.first_hint` takes the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..geometry import conv_output_size
from .cases import ConvCase, Im2colCase
from .checks import Hint, close

ADVICE = {
    ("forward", "stride"): "output pixel (i, j) reads input row i*stride_h + p*dilation_h (and likewise columns), "
    "and H_out = (H + 2*pad_h - dilation_h*(kH-1) - 1) // stride_h + 1",
    ("forward", "dilation"): "kernel tap p reads input row i*stride_h + p*dilation_h, and the dilated kernel spans "
    "dilation*(k-1) + 1 pixels in the output-size formula",
    ("forward", "padding"): "pad pad_h zero rows on top AND bottom and pad_w zero columns left AND right, e.g. "
    "np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))",
    ("forward", "groups"): "group g uses input channels [g*C_in/G, (g+1)*C_in/G) and produces output channels "
    "[g*C_out/G, (g+1)*C_out/G), with the weight rows of those outputs",
    ("forward", "bias"): "add bias[k] to every pixel of output channel k (bias may be None: then add nothing)",
    ("dx", "stride"): "stride ignored in the backward pass? dy[n, k, i, j] flows back to x row "
    "i*stride_h + p*dilation_h and column j*stride_w + q*dilation_w",
    ("dx", "dilation"): "dy[n, k, i, j] flows back to x row i*stride_h + p*dilation_h (dilation ignored?)",
    ("dx", "padding"): "compute the gradient of the PADDED input, then crop the padding off: "
    "dx = dx_padded[:, :, pad_h:pad_h + H, pad_w:pad_w + W]",
    ("dx", "groups"): "the gradient of group g's input channels only comes from group g's output channels and weights",
    ("dw", "stride"): "dw[k, c, p, q] sums x_padded[n, c, i*stride_h + p*dilation_h, j*stride_w + q*dilation_w] * "
    "dy[n, k, i, j] (stride ignored?)",
    ("dw", "dilation"): "dw[k, c, p, q] pairs dy[n, k, i, j] with x_padded row i*stride_h + p*dilation_h",
    ("dw", "padding"): "dw pairs dy with the PADDED input (pad x exactly as in the forward pass)",
    ("dw", "groups"): "dw of output channel k (group g) only sees input channels [g*C_in/G, (g+1)*C_in/G)",
    ("db", "stride"): "db does not depend on the stride: it is dy summed over N, H_out and W_out",
    ("db", "groups"): "db does not depend on groups: it is dy summed over N, H_out and W_out",
    ("im2col", "stride"): "output pixel (i, j) starts at input row i*stride_h and column j*stride_w",
    ("im2col", "dilation"): "kernel tap (p, q) reads row i*stride_h + p*dilation_h, column j*stride_w + q*dilation_w",
    ("im2col", "padding"): "pad pad_h zero rows on top AND bottom and pad_w zero columns left AND right",
}


# --------------------------------------------------------------------------- isolation
def isolate(kind: str, case: ConvCase | Im2colCase, passes: Callable[[Any], bool]) -> Hint:
    """A hint that re-runs the student on the case with each feature switched off in turn (see module docstring)."""

    def hint() -> str | None:
        features = [f for f in case.features() if (kind, f) in ADVICE]
        for feature in features:
            if passes(case.without(feature)):
                value = getattr(case, feature)
                shown = "" if feature in ("bias", "groups") else f" {value}"
                setting = f"groups={value}" if feature == "groups" else f"{feature}{shown}"
                return f"right without {feature}, wrong with {setting}: {ADVICE[(kind, feature)]}"
        return None

    return hint


# --------------------------------------------------------------------------- forward
def forward_shape_hints(case: ConvCase, got: tuple[int, ...]) -> list[Hint]:
    """Shapes that known mistakes produce: stride/dilation/padding ignored, padding on one side, kH/kW swapped, ..."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case.kernel, case.stride, case.padding, case.dilation

    def size(kernel=(kh, kw), stride=(sh, sw), before=(ph, pw), after=(ph, pw), dilation=(dh, dw)) -> tuple:
        out_h = conv_output_size(case.h, kernel[0], stride[0], before[0], after[0], dilation[0])
        out_w = conv_output_size(case.w, kernel[1], stride[1], before[1], after[1], dilation[1])
        return (case.n, case.c_out, out_h, out_w)

    expected = case.y_shape
    candidates = [
        (
            "that is the shape for stride 1: use the stride in the output-size formula and the loops",
            size(stride=(1, 1)),
        ),
        (
            "that is the shape without dilation: the dilated kernel spans dilation*(k-1) + 1 pixels",
            size(dilation=(1, 1)),
        ),
        ("that is the shape without padding: pad the input first", size(before=(0, 0), after=(0, 0))),
        ("that is the shape with padding on one side only: pad both sides", size(after=(0, 0))),
        ("kH and kW are swapped: weight.shape is (C_out, C_in // groups, kH, kW)", size(kernel=(kw, kh))),
        (
            "H_out = (H + 2*pad - dilation*(k-1) - 1) // stride + 1 (note the + 1)",
            tuple(np.subtract(expected, (0, 0, 1, 1))),
        ),
        (
            "H_out = (H + 2*pad - dilation*(k-1) - 1) // stride + 1 (note the - 1 inside)",
            (
                case.n,
                case.c_out,
                (case.h + 2 * ph - dh * (kh - 1)) // sh + 1,
                (case.w + 2 * pw - dw * (kw - 1)) // sw + 1,
            ),
        ),
        (
            f"the vertical stride ({sh}) was used for both axes: W_out uses stride_w = stride[1] = {sw}",
            size(stride=(sh, sh)),
        ),
        (
            f"the horizontal stride ({sw}) was used for both axes: H_out uses stride_h = stride[0] = {sh}",
            size(stride=(sw, sw)),
        ),
        ("the strides of the two axes are swapped: stride is (stride_h, stride_w)", size(stride=(sw, sh))),
    ]
    # Several mistakes can give the same shape (padding on one side only and a missing + 1, on pad-1 stride-1
    # cases): name every one that fits, rather than the first.
    fitting = [m for m, s in candidates if tuple(int(v) for v in s) == got and tuple(int(v) for v in s) != expected]
    hints: list[Hint] = [lambda: " or ".join(fitting) if fitting else None]
    channel_advice = {
        case.c_in: "y has C_in channels; it has C_out = weight.shape[0]",
        case.c_out // case.groups: "y has only one group's output channels; it has all C_out = weight.shape[0]",
    }
    if len(got) == 4 and got[1] != case.c_out and got[1] in channel_advice:
        hints.append(lambda: channel_advice[got[1]])
    return hints


def output_size_hint(case: ConvCase) -> str:
    """The output-size formula with this case's numbers: where an IndexError or a shape error is most often born."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case.kernel, case.stride, case.padding, case.dilation
    geom = case.geometry()
    return (
        f"check the output size first: here H_out = (H + 2*pad_h - dil_h*(kH-1) - 1) // stride_h + 1 = "
        f"({case.h} + {2 * ph} - {dh * (kh - 1)} - 1) // {sh} + 1 = {geom.out_h} and W_out = "
        f"({case.w} + {2 * pw} - {dw * (kw - 1)} - 1) // {sw} + 1 = {geom.out_w}; then the kernel indices "
        "(weight[k, c, p, q]: p < kH along rows, q < kW along columns)"
    )


def float32_hint(case: ConvCase, expected: np.ndarray, got: Any) -> Hint:
    """float64 inputs, a result of float32 accuracy: the arithmetic was done in float32 somewhere."""

    def hint() -> str | None:
        if case.dtype != "float64" or not isinstance(got, np.ndarray) or got.shape != expected.shape:
            return None
        scale = max(float(np.max(np.abs(expected))), 1e-3)
        error = float(np.max(np.abs(got.astype(np.float64) - expected))) / scale
        if 1e-9 < error < 1e-5:
            return (
                f"the error ({error:.1g} of the scale) is float32 rounding on float64 inputs: compute in the inputs' "
                "dtype (an np.zeros(..., dtype=np.float32) or an .astype(np.float32) somewhere?)"
            )
        return None

    return hint


def _reference(case: ConvCase, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, **changes: Any):
    """The reference for a mutated problem (same geometry unless ``changes`` says otherwise), float64."""
    return dataclasses.replace(case, **changes).forward_reference(x, weight, bias)


def forward_value_hints(
    case: ConvCase, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, expected: np.ndarray, got: Any
) -> list[Hint]:
    """Mutations whose answer the student's matches: bias missing, kernel flipped or transposed, padding on one side,
    groups as interleaved channels or all reading group 0; and which groups are wrong."""
    dtype = case.dtype
    (ph, pw), g = case.padding, case.groups
    channels_per_group = case.c_in // g
    hints: list[Hint] = [float32_hint(case, expected, got)]
    if bias is not None:
        hints.append(
            lambda: (
                "bias was not added: add bias[k] to every pixel of output channel k"
                if close(got, expected - bias.reshape(1, -1, 1, 1), dtype)
                else None
            )
        )
    hints.append(
        lambda: (
            "the kernel is flipped: this conv2d is a cross-correlation (as in PyTorch), "
            "y[.., i, j] = sum x[.., i*s + p*d, j*s + q*d] * w[.., p, q], no flipping"
            if close(got, _reference(case, x, weight[:, :, ::-1, ::-1], bias), dtype)
            else None
        )
    )
    if case.kernel[0] == case.kernel[1]:
        hints.append(
            lambda: (
                "kernel rows and columns are swapped: weight[k, c, p, q] has p along H (rows) and q along W"
                if close(got, _reference(case, x, weight.swapaxes(2, 3), bias), dtype)
                else None
            )
        )
    if (ph, pw) != (0, 0):

        def one_side() -> str | None:
            for sides in (((2 * ph, 0), (2 * pw, 0)), ((0, 2 * ph), (0, 2 * pw))):
                padded = np.pad(x, ((0, 0), (0, 0), *sides))  # a wrong padding, on purpose
                if close(
                    got,
                    _reference(case, padded, weight, bias, padding=(0, 0), h=padded.shape[2], w=padded.shape[3]),
                    dtype,
                ):
                    return (
                        "all the padding went on one side: pad pad_h rows on top AND bottom, pad_w columns on each side"
                    )
            return None

        hints.append(one_side)
    if g > 1:
        interleaved = np.concatenate([np.arange(group, case.c_in, g) for group in range(g)])
        hints.append(
            lambda: (
                "groups were taken as interleaved channels (c % G); group g owns the contiguous block "
                "[g*C_in/G, (g+1)*C_in/G) of input channels"
                if close(got, _reference(case, x[:, interleaved], weight, bias), dtype)
                else None
            )
        )
        first_block = np.concatenate([x[:, :channels_per_group]] * g, axis=1)
        hints.append(
            lambda: (
                "every group read the first group's input channels: offset the input slice by g*C_in/G"
                if close(got, _reference(case, first_block, weight, bias), dtype)
                else None
            )
        )
        hints.append(lambda: _wrong_groups(case, expected, got))
    return hints


def _wrong_groups(case: ConvCase, expected: np.ndarray, got: Any) -> str | None:
    """'group 0 is right, groups 1, 2 are wrong': the classic symptom of slicing only the first group correctly."""
    if not isinstance(got, np.ndarray) or got.shape != expected.shape:
        return None
    per_group = case.c_out // case.groups
    right = [
        close(got[:, g * per_group : (g + 1) * per_group], expected[:, g * per_group : (g + 1) * per_group], case.dtype)
        for g in range(case.groups)
    ]
    if right[0] and not all(right):
        wrong = [str(g) for g, ok in enumerate(right) if not ok]
        return (
            f"group 0's output channels are right, group(s) {', '.join(wrong)} wrong: check the channel slices "
            "for g > 0 (x[:, g*C_in/G:(g+1)*C_in/G], weight[g*C_out/G:(g+1)*C_out/G], y[:, g*C_out/G:(g+1)*C_out/G])"
        )
    return None


# --------------------------------------------------------------------------- backward
def coverage(case: ConvCase) -> np.ndarray:
    """(H, W): how many (window, tap) pairs read each input pixel; >1 where windows overlap."""
    from ..backends.im2col import col2im

    single = dataclasses.replace(case, n=1, c_in=1, c_out=1, groups=1).geometry()
    ones = np.ones((1, 1, *case.kernel, single.out_h, single.out_w))
    return col2im(ones, single)[0, 0]


def overwriting_col2im(case: ConvCase, dy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """dx as a col2im that ASSIGNS instead of adding computes it: where windows overlap, the last tap (p, q) wins."""
    geom = case.geometry()
    g, k, c = case.groups, case.c_out // case.groups, case.c_in // case.groups
    dy_grouped = dy.astype(np.float64).reshape(case.n, g, k, geom.out_h, geom.out_w)
    w_grouped = weight.astype(np.float64).reshape(g, k, c, *case.kernel)
    # (N, G, C_in/G, kH, kW, H_out, W_out): every column's gradient, W^T dY per group
    dcols = np.einsum("ngkij,gkcpq->ngcpqij", dy_grouped, w_grouped).reshape(
        case.n, case.c_in, *case.kernel, geom.out_h, geom.out_w
    )
    dxpad = np.zeros((case.n, case.c_in, *geom.padded_size))
    for p in range(case.kernel[0]):
        for q in range(case.kernel[1]):
            rows, columns = geom.tap(p, q)
            dxpad[:, :, rows, columns] = dcols[:, :, p, q]
    return dxpad[geom.interior]


OVERWRITE_HINT = "col2im must add every window's contribution (+=), not overwrite"


def dx_value_hints(case: ConvCase, expected: np.ndarray, got: Any, dy: np.ndarray, weight: np.ndarray) -> list[Hint]:
    def assigned() -> str | None:
        if close(got, overwriting_col2im(case, dy, weight), case.dtype):
            return f"dx is what an overwriting col2im gives: {OVERWRITE_HINT}"
        return None

    def overwritten() -> str | None:
        if not isinstance(got, np.ndarray) or got.shape != expected.shape:
            return None
        error = np.abs(got.astype(np.float64) - expected)
        overlap = np.broadcast_to(coverage(case) > 1, expected.shape)
        wrong = error > 1e-3 * max(float(np.max(np.abs(expected))), 1e-3)
        # Only telling when some pixels are covered once (and right) while overlapped ones are wrong.
        if wrong.any() and (~overlap).any() and not (wrong & ~overlap).any():
            return f"dx is right where one window covers a pixel and wrong where windows overlap: {OVERWRITE_HINT}"
        return None

    def flipped() -> str | None:
        if close(got, case.backward_reference(dy, case.inputs()[0], weight[:, :, ::-1, ::-1])[0], case.dtype):
            return (
                "dx is computed with the kernel flipped: the forward pass is a cross-correlation (no flip), so "
                "dxpad[n, c, i*sh + p*dh, j*sw + q*dw] += dy[n, k, i, j] * weight[k, c, p, q] with the same (p, q)"
            )
        return None

    return [float32_hint(case, expected, got), assigned, overwritten, flipped]


def dx_shape_hints(case: ConvCase, got: tuple[int, ...]) -> list[Hint]:
    (ph, pw) = case.padding
    padded = (case.n, case.c_in, case.h + 2 * ph, case.w + 2 * pw)
    return [
        lambda: (
            "dx still has the padding: crop it, dx_padded[:, :, pad_h:pad_h + H, pad_w:pad_w + W]"
            if got == padded and (ph, pw) != (0, 0)
            else None
        )
    ]


def dw_value_hints(case: ConvCase, expected: np.ndarray, got: Any) -> list[Hint]:
    if case.n == 1:
        return [float32_hint(case, expected, got)]
    return [
        float32_hint(case, expected, got),
        lambda: (
            f"dw is averaged over the batch (divided by N={case.n}): the gradient sums over samples"
            if close(got * case.n if isinstance(got, np.ndarray) else None, expected, case.dtype)
            else None
        ),
    ]


def db_value_hints(case: ConvCase, expected: np.ndarray, got: Any) -> list[Hint]:
    geom = case.geometry()
    divisors = {
        case.n * geom.out_h * geom.out_w: "db is a mean; it is the SUM of dy over N, H_out and W_out",
        geom.out_h * geom.out_w: "db is averaged over H_out*W_out; it is the SUM of dy over N, H_out and W_out",
        case.n: f"db is averaged over the batch (divided by N={case.n}); it is the SUM of dy over N, H_out and W_out",
    }
    dy = case.upstream().astype(np.float64)

    def one_sample() -> str | None:
        if case.n > 1 and close(got, dy[0].sum(axis=(1, 2)), case.dtype):
            return f"db is from the first sample only: sum dy over the batch too (N={case.n}), dy.sum(axis=(0, 2, 3))"
        return None

    return [
        float32_hint(case, expected, got),
        one_sample,
        *(
            (
                lambda d=divisor, m=message: (
                    m if d > 1 and isinstance(got, np.ndarray) and close(got * d, expected, case.dtype) else None
                )
            )
            for divisor, message in divisors.items()
        ),
    ]


def db_shape_hints(case: ConvCase, got: tuple[int, ...]) -> list[Hint]:
    return [
        lambda: (
            "db has one value per output channel, shape (C_out,): dy.sum(axis=(0, 2, 3))"
            if got != (case.c_out,)
            else None
        )
    ]


# --------------------------------------------------------------------------- im2col
def im2col_hints(case: Im2colCase, expected: np.ndarray, got: Any) -> list[Hint]:
    n, c = case.shape[:2]
    kh, kw = case.kernel
    length = expected.shape[2]

    def order() -> str | None:
        kernel_first = expected.reshape(n, c, kh, kw, length).transpose(0, 2, 3, 1, 4).reshape(expected.shape)
        if close(got, kernel_first, case.dtype):
            return (
                "rows are ordered (kernel row, kernel column, channel); the contract is (channel, kernel row, column)"
            )
        swapped = expected.reshape(n, c, kh, kw, length).transpose(0, 1, 3, 2, 4).reshape(expected.shape)
        if close(got, swapped, case.dtype):
            return "kernel rows and columns are swapped in the row order: row index = (c*kH + p)*kW + q"
        return None

    def transposed() -> str | None:
        if isinstance(got, np.ndarray) and got.ndim == 3 and got.shape == (n, length, expected.shape[1]):
            return "the matrix is transposed: rows are C*kH*kW (channel, tap), columns are H_out*W_out pixels"
        return None

    return [order, transposed]
