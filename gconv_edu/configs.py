"""The named layers the course measures: lessons, the benchmark and the tests all take them from here.

Each is one real network's layer at batch 8 (float32 in the benchmark):

=================  ==========================================================================================
alexnet-conv2      AlexNet's second convolution (Krizhevsky et al. 2012, Fig. 2): 96 -> 256, 5x5, G = 2 towers
resnext-g32        a ResNeXt-50 (32x4d) conv2 3x3 layer (Xie et al. 2017, Table 1): 128 -> 128, G = 32
mobilenet-dw       a MobileNet depthwise 3x3 layer (Howard et al. 2017, Table 1): 64 channels at 112x112
shufflenet-pw-g8   a ShuffleNet 1x1 group pointwise layer (Zhang et al. 2018, Table 1, g = 8): 384 -> 384
dense-3x3          a plain (G = 1) 3x3 layer of the same size as a ResNet stage-2 layer, the dense reference
=================  ==========================================================================================
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
CONFIG_FIELDS = "N,Cin,Cout,H,W,k,stride,pad,groups"


def parse_config(text: str) -> LayerConfig:
    """A named config, or ``"N,Cin,Cout,H,W,k,stride,pad,groups"`` (9 positive ints; pad may be 0), validated."""
    if text in NAMED_CONFIGS:
        return NAMED_CONFIGS[text]
    parts = text.split(",")
    if len(parts) != 9:
        raise ValueError(
            f"--config {text!r} must be a named config {sorted(NAMED_CONFIGS)} or 9 comma-separated ints "
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
