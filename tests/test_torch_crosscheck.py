"""PyTorch as a second reference (skipped where torch is not importable; it is never a dependency)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, skip_unless_supported
from test_backends_grid import CASES, _case

import gconv_edu as gc

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", backend_params())
def test_matches_torch_forward_and_backward(backend, case, dtype):
    x, weight, bias, options, rng = _case(case, dtype, seed=1)
    skip_unless_supported(backend, x.shape, weight.shape, **options)
    tx = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    tw = torch.tensor(np.asarray(weight, dtype=np.float64), requires_grad=True)
    tb = torch.tensor(bias.astype(np.float64), requires_grad=True) if bias is not None else None
    ty = torch.nn.functional.conv2d(tx, tw, tb, **options)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(dy.astype(np.float64)))

    y = gc.conv2d(x, weight, bias, backend=backend, **options)
    assert_close(y, ty.detach().numpy(), dtype, "y")
    dx, dw, db = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    assert_close(dx, tx.grad.numpy(), dtype, "dx")
    assert_close(dw, tw.grad.numpy(), dtype, "dw")
    if tb is not None:
        assert_close(db, tb.grad.numpy(), dtype, "db")
