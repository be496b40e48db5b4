"""gconv_edu: grouped 2-D convolution from first principles, with hand-written backprop and several backends."""

from .api import conv2d, conv2d_backward, use_backend
from .backends import available_backends
from .geometry import ConvGeometry
from .gradcheck import gradcheck
from .transpose import conv_transpose2d, conv_transpose2d_backward

__version__ = "0.1.0"

__all__ = [
    "ConvGeometry",
    "__version__",
    "available_backends",
    "conv2d",
    "conv2d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "gradcheck",
    "use_backend",
]
