"""The named layers the course measures: lessons, the benchmark and the tests all take them from here.

Each is one real network's layer at batch 8 (float32 in the benchmark):

=================  ==========================================================================================
alexnet-conv2      AlexNet's second convolution (Krizhevsky et al. 2012, Fig. 2): 96 -> 256, 5x5, G = 2 towers
resnext-g32        a ResNeXt-50 (32x4d) conv2 3x3 layer (Xie et al. 2017, Table 1): 128 -> 128, G = 32
mobilenet-dw       a MobileNet depthwise 3x3 layer (Howard et al. 2017, Table 1): 64 channels at 112x112
shufflenet-pw-g8   a ShuffleNet 1x1 group pointwise layer (Zhang et al. 2018, Table 1, g = 8): 384 -> 384
dense-3x3          a plain (G = 1) 3x3 layer of the same size as a ResNet stage-2 layer, the dense reference
=================  ==========================================================================================

:data:`SWEEP_CONFIGS` adds 18 further layers of the shapes real networks use (3x3 and 5x5 kernels, 16-256 channels,
7-112 pixels, groups 1, 2, 4, 8, 16, 32 and depthwise, stride 1 and 2), batch 8, so that the rule of ``auto`` can be
re-derived from measurements over more than the five named layers: ``gconv-edu bench --configs sweep`` (or ``all``).
Their names say what they are: ``3x3-c64-56-g8`` is a 3x3 layer, 64 -> 64 channels, 56x56 pixels, 8 groups;
``dw5x5-c128-28`` a depthwise 5x5 one; ``-s2`` stride 2; ``c32to64`` C_in -> C_out. Padding keeps the size ("same").
"""

from __future__ import annotations

from dataclasses import dataclass

from .geometry import ConvGeometry


@dataclass(frozen=True)
class LayerConfig:
    """One convolution layer and its input: square kernel, same stride and padding on both axes."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def geometry(self) -> ConvGeometry:
        """The validated geometry (with bias): x (N, C_in, H, W), weight (C_out, C_in/G, k, k)."""
        return ConvGeometry.from_layer(
            self.in_channels,
            self.out_channels,
            self.kernel,
            self.stride,
            self.padding,
            1,
            self.groups,
            True,
            batch=self.batch,
            height=self.height,
            width=self.width,
        )


NAMED_CONFIGS: dict[str, LayerConfig] = {
    config.name: config
    for config in (
        LayerConfig("alexnet-conv2", 8, 96, 256, 27, 27, 5, 1, 2, 2),
        LayerConfig("resnext-g32", 8, 128, 128, 56, 56, 3, 1, 1, 32),
        LayerConfig("mobilenet-dw", 8, 64, 64, 112, 112, 3, 1, 1, 64),
        LayerConfig("shufflenet-pw-g8", 8, 384, 384, 28, 28, 1, 1, 0, 8),
        LayerConfig("dense-3x3", 8, 64, 64, 56, 56, 3, 1, 1, 1),
    )
}
# The same five shapes of layer, shrunk so that a test or `bench --quick` runs them in seconds.
QUICK_CONFIGS: dict[str, LayerConfig] = {
    config.name: config
    for config in (
        LayerConfig("alexnet-conv2-tiny", 2, 8, 16, 9, 9, 5, 1, 2, 2),
        LayerConfig("resnext-g32-tiny", 2, 32, 32, 8, 8, 3, 1, 1, 8),
        LayerConfig("mobilenet-dw-tiny", 2, 8, 8, 12, 12, 3, 1, 1, 8),
        LayerConfig("shufflenet-pw-g8-tiny", 2, 16, 16, 6, 6, 1, 1, 0, 8),
        LayerConfig("dense-3x3-tiny", 2, 8, 8, 8, 8, 3, 1, 1, 1),
    )
}


def _sweep_layer(kernel: int, c_in: int, c_out: int, pixels: int, groups: int = 1, stride: int = 1) -> LayerConfig:
    """One sweep layer at batch 8, square input, padding kernel // 2; named as in the module docstring."""
    depthwise = groups == c_in == c_out
    channels = f"c{c_in}" if c_in == c_out else f"c{c_in}to{c_out}"
    name = f"{'dw' if depthwise else ''}{kernel}x{kernel}-{channels}-{pixels}"
    name += ("" if depthwise or groups == 1 else f"-g{groups}") + ("" if stride == 1 else f"-s{stride}")
    return LayerConfig(name, 8, c_in, c_out, pixels, pixels, kernel, stride, kernel // 2, groups)


SWEEP_CONFIGS: dict[str, LayerConfig] = {
    config.name: config
    for config in (
        # dense 3x3 over the sizes of a ResNet/VGG pyramid
        _sweep_layer(3, 16, 16, 112),
        _sweep_layer(3, 32, 32, 56),
        _sweep_layer(3, 128, 128, 28),
        _sweep_layer(3, 256, 256, 14),
        _sweep_layer(3, 256, 256, 7),
        _sweep_layer(3, 64, 128, 56, stride=2),  # a downsampling 3x3 (ResNet stage entry)
        # grouped 3x3 (ResNeXt-like widths, and the space between dense and depthwise)
        _sweep_layer(3, 64, 64, 56, groups=8),
        _sweep_layer(3, 128, 128, 28, groups=4),
        _sweep_layer(3, 256, 256, 14, groups=32),
        _sweep_layer(3, 256, 256, 7, groups=16),
        # depthwise 3x3 (MobileNet's sizes), one with stride 2
        _sweep_layer(3, 32, 32, 112, groups=32),
        _sweep_layer(3, 128, 128, 56, groups=128, stride=2),
        _sweep_layer(3, 256, 256, 28, groups=256),
        # 5x5: dense (Inception-like), grouped, depthwise (MnasNet/EfficientNet-like)
        _sweep_layer(5, 32, 64, 28),
        _sweep_layer(5, 64, 64, 28),
        _sweep_layer(5, 128, 128, 14, groups=2),
        _sweep_layer(5, 128, 128, 28, groups=128),
        _sweep_layer(5, 256, 256, 14, groups=256),
    )
}
CONFIG_SETS: dict[str, dict[str, LayerConfig]] = {
    "named": NAMED_CONFIGS,
    "sweep": SWEEP_CONFIGS,
    "all": {**NAMED_CONFIGS, **SWEEP_CONFIGS},
    "quick": QUICK_CONFIGS,
}
CONFIG_FIELDS = "N,Cin,Cout,H,W,k,stride,pad,groups"


def parse_config(text: str) -> LayerConfig:
    """A named, sweep or quick config, or ``"N,Cin,Cout,H,W,k,stride,pad,groups"`` (9 ints; pad may be 0), validated."""
    for known in (NAMED_CONFIGS, SWEEP_CONFIGS, QUICK_CONFIGS):
        if text in known:
            return known[text]
    parts = text.split(",")
    if len(parts) != 9:
        raise ValueError(
            f"--config {text!r} must be a named config {sorted(NAMED_CONFIGS)}, a sweep layer (gconv-edu bench "
            f"--list-configs), or 9 comma-separated ints "
            f"{CONFIG_FIELDS}; got {len(parts)} fields"
        )
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"--config {text!r} must contain ints ({CONFIG_FIELDS})") from None
    config = LayerConfig("custom-" + "-".join(parts), *values)
    config.geometry()  # raises ValueError naming the offending parameter
    return config


def layer_table() -> dict[str, tuple[int, int, int, int, int, int]]:
    """name -> (C_in, C_out, k, padding, G, H) of every named layer, as the lessons tabulate them."""
    return {
        c.name: (c.in_channels, c.out_channels, c.kernel, c.padding, c.groups, c.height) for c in NAMED_CONFIGS.values()
    }
