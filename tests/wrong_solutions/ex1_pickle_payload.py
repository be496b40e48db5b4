"""Wrong on purpose: the result's __reduce__ runs code in whatever unpickles it. Unpickled by the grader with plain
pickle, this switched off the grader's array check and scored full marks; it must score zero."""

import numpy as np


class _Sneaky:
    def __reduce__(self):
        code = (
            "(__import__('sys').modules['gconv_edu.grading.flows'].__setattr__('check_array', lambda *a, **k: None),"
            " __import__('numpy').zeros(1))[1]"
        )
        return (eval, (code,))


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    return _Sneaky()


_ = np  # the exploit needs nothing else
