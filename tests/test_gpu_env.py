"""Ready for a bare GPU machine, checked without one.

- The GPU tests and ``gconv-edu bench --device gpu --help`` work where threadpoolctl, jupytext and pytest-timeout
  are absent (hidden here by a sitecustomize: imports fail and their distributions are not listed).
- ``scripts/gpu-check``: executable, compiles, and without a CUDA device exits 2 at once with one clear line; its
  pure parts (occupancy, targets, summary, merging the per-config JSON) on made-up data; the kernels it reports are
  the ones cupy-raw launches (tiled and simple).
- The GPU side of the benchmark (:mod:`gconv_edu.bench.gpu`) on fakes of cupyx's benchmark, CuPy's pool and torch:
  medians of n_repeat CUDA-event times and host times, allocated-bytes peaks, TF32 off, CUDA errors per config.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import py_compile
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from gconv_edu.bench import gpu, measure
from gconv_edu.configs import QUICK_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECK = ROOT / "scripts" / "gpu-check"
HIDDEN = ("threadpoolctl", "jupytext", "pytest_timeout")

SITECUSTOMIZE = """
import importlib.abc, importlib.metadata as metadata, sys
HIDDEN = {"threadpoolctl", "jupytext", "pytest_timeout"}
DISTRIBUTIONS = {"threadpoolctl", "jupytext", "pytest-timeout"}

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)

sys.meta_path.insert(0, Hide())
_distributions = metadata.distributions

def distributions(**kwargs):  # pytest finds plugins through the installed distributions' entry points
    for dist in _distributions(**kwargs):
        if (dist.metadata["Name"] or "").lower().replace("_", "-") not in DISTRIBUTIONS:
            yield dist

metadata.distributions = distributions
"""


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory):
    """Environment variables for a subprocess in which the optional packages do not exist."""
    folder = tmp_path_factory.mktemp("bare_gpu_machine")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def _run(command, env, timeout=600):
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def test_the_hiding_really_hides(bare_env):
    code = "import importlib.metadata as m, sys\n" + "".join(
        f"try:\n    import {name}\n    sys.exit('{name} imported')\nexcept ModuleNotFoundError:\n    pass\n"
        for name in HIDDEN
    )
    code += "names = {d.metadata['Name'].lower() for d in m.distributions()}\nassert 'pytest-timeout' not in names\n"
    result = _run([sys.executable, "-c", code], bare_env, 60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_tests_collect_without_the_optional_packages(bare_env):
    result = _run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider"], bare_env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "error" not in output.lower().split("short test summary")[0][-2000:], output[-3000:]
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert any("test_cupy.py::test_gpu_" in line for line in collected), output[-3000:]
    assert "Unknown pytest.mark.timeout" not in output  # the mark is registered where the plugin is absent


def test_gpu_bench_help_without_the_optional_packages(bare_env):
    result = _run([sys.executable, "-m", "gconv_edu", "bench", "--device", "gpu", "--help"], bare_env, 120)
    assert result.returncode == 0, result.stderr
    assert "--device" in result.stdout


# --------------------------------------------------------------------------- scripts/gpu-check
def _load_gpu_check() -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(GPU_CHECK))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("gpu_check", loader))
    loader.exec_module(module)
    return module


def test_gpu_check_is_an_executable_python_script(tmp_path):
    assert os.access(GPU_CHECK, os.X_OK), "scripts/gpu-check must be executable"
    assert GPU_CHECK.read_text().startswith("#!/usr/bin/env python3\n")
    py_compile.compile(str(GPU_CHECK), cfile=str(tmp_path / "gpu_check.pyc"), doraise=True)


def test_gpu_check_without_a_device_exits_at_once_with_one_line(tmp_path):
    from gconv_edu.backends import cupy_gpu

    if cupy_gpu.availability() is None:
        pytest.skip("a CUDA device is usable here")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(tmp_path / "out")}
    start = time.monotonic()
    result = subprocess.run([str(GPU_CHECK)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no usable CUDA device here ("), result.stderr
    assert not (tmp_path / "out").exists()  # nothing written before the device check


def test_gpu_check_occupancy_from_registers():
    check = _load_gpu_check()
    assert check.occupancy(32, 256, 0) == 1.0
    assert check.occupancy(132, 256, 0) == 0.125  # the 7x7 forward kernel the issue measured: 12.5 %
    assert check.occupancy(64, 256, 0) == 0.5
    assert check.occupancy(32, 256, 100 * 1024) == 2 * 256 / 2048  # shared memory limits it to 2 blocks


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the launches are collected, not run: dw sums empty memory
@pytest.mark.parametrize(
    "config, tiled",
    [("mobilenet-dw", True), ("resnext-g32", True), ("alexnet-conv2", False), ("dense-3x3", False)],
)
def test_gpu_check_reports_every_kernel_cupy_raw_launches_tiled_and_simple(config, tiled):
    """The kernels step lists the backends' own launches (NumPy arrays stand in for CuPy's; nothing runs)."""
    import numpy as np

    from gconv_edu.backends import cupy_gpu
    from gconv_edu.configs import NAMED_CONFIGS

    check = _load_gpu_check()
    geom = NAMED_CONFIGS[config].geometry()
    arrays = measure.random_arrays(geom, "float32")
    plans = check.planned_launches(cupy_gpu, geom, np, *arrays)
    simple = [(role, launch.name) for role, path, launch in plans if path == "simple"]
    assert simple == [
        ("forward", "gconv_forward"),
        ("backward_input", "gconv_backward_input"),
        ("backward_weight", "gconv_backward_weight"),
    ]
    fast = [(role, launch.name) for role, path, launch in plans if path == "tiled"]
    expected = [
        ("forward", "gconv_tiled_forward"),
        ("backward_input", "gconv_tiled_forward"),  # dx: the forward kernel on the flipped filter
        ("backward_weight", "gconv_tiled_backward_weight"),
    ]
    assert fast == (expected if tiled else [])
    columns = [(role, launch.name) for role, path, launch in plans if path == "cupy"]
    assert columns == [("im2col", "gconv_im2col"), ("col2im", "gconv_col2im")]


def _record(config, contender, ratio, pass_="forward+backward"):
    """A benchmark record with the fields the summary and the plot read."""
    fields = {"kind": "backend", "device": "gpu", "ms_median": ratio, "gflops": 1.0 / ratio, "peer": "torch"}
    return {"config": config, "pass": pass_, "contender": contender, "ratio_to_peer": ratio, **fields}


def test_gpu_check_targets_take_the_best_listed_backend_and_say_what_is_missing():
    check = _load_gpu_check()
    records = [
        _record("mobilenet-dw", "cupy-raw", 0.5),
        _record("mobilenet-dw", "cupy", 0.1),  # not a listed backend for this target: ignored
        _record("resnext-g32", "cupy", 1.4),
        _record("resnext-g32", "cupy-raw", 0.9),
        _record("alexnet-conv2", "cupy", 2.0),
        _record("alexnet-conv2", "cupy", 0.2, pass_="forward"),  # forward only: ignored
        {"config": "dense-3x3", "pass": "-", "contender": "-", "skipped": "CUDA error: X", "error": True},
    ]
    rows = {row[0]: row for row in check.target_rows(records)}
    assert rows["mobilenet-dw"][1:] == ("cupy-raw", "0.50", "<= 0.7", "met")
    assert rows["resnext-g32"][1:] == ("cupy-raw", "0.90", "<= 1.0", "met")
    assert rows["alexnet-conv2"][4] == "MISSED"
    assert rows["dense-3x3"][4] == "not measured (CUDA error: X)"


def test_gpu_check_merges_per_config_json_and_writes_the_summary(tmp_path):
    check = _load_gpu_check()
    for config in ("mobilenet-dw", "resnext-g32"):
        payload = {"settings": {"gpu": "Fake H200", "date": "2026-01-01"}, "configs": [{"name": config}]}
        payload["records"] = [_record(config, "cupy-raw", 0.6)]
        (tmp_path / f"bench_{config}.json").write_text(json.dumps(payload))
    merged = json.loads(check.merge_bench(tmp_path).read_text())
    assert [c["name"] for c in merged["configs"]] == ["mobilenet-dw", "resnext-g32"]
    assert len(merged["records"]) == 2
    text = check.step_summary(tmp_path, [("pytest", "ok", 12.0), ("bench dense-3x3", "timed out", 45.0)])
    assert (tmp_path / "summary.txt").read_text() == text + "\n"
    assert (tmp_path / "bench_gpu.png").stat().st_size > 0
    assert "Fake H200" in text and "timed out" in text
    assert text.splitlines()[-4].split() == ["mobilenet-dw", "cupy-raw", "0.60", "<=", "0.7", "met"]


def test_gpu_check_steps_time_box_a_hang(tmp_path, monkeypatch):
    check = _load_gpu_check()
    steps = check.Steps(tmp_path)
    began = time.monotonic()
    assert steps.run("hang", [sys.executable, "-c", "import time; time.sleep(60)"], 1.0, "hang.txt") is None
    assert time.monotonic() - began < 10 and steps.results[-1][1] == "timed out"
    assert (tmp_path / "hang.txt").read_text().endswith("[timed out]")
    monkeypatch.setattr(check, "TOTAL_BUDGET_S", 0)
    assert steps.run("late", [sys.executable, "-c", "pass"], 30) is None
    assert steps.results[-1][1] == "not run: out of time"


# --------------------------------------------------------------------------- the GPU side of the benchmark, on fakes
class FakeBenchmarkResult:
    """What ``cupyx.profiler.benchmark`` returns: cpu_times (n_repeat,), gpu_times (devices, n_repeat), seconds."""

    def __init__(self, cpu_times, gpu_times):
        self.cpu_times, self.gpu_times = cpu_times, [gpu_times]


def test_profile_reports_medians_of_device_and_host_times():
    calls = []

    def fake_benchmark(function, n_repeat, n_warmup):
        calls.append((n_repeat, n_warmup))
        for _ in range(n_repeat):
            function()
        return FakeBenchmarkResult([0.001, 0.003, 0.002], [0.010, 0.030, 0.020])

    ran = []
    result = gpu.profile(lambda: ran.append(1), 3, fake_benchmark)
    assert calls == [(3, 0)] and len(ran) == 3
    assert result == pytest.approx({"gpu_ms": 20.0, "host_ms": 2.0, "host_bound": False})
    host_bound = gpu.profile(lambda: None, 3, lambda f, **k: FakeBenchmarkResult([0.05] * 3, [0.01] * 3))
    assert host_bound["host_bound"] is True
    assert gpu.time_once(lambda: None, lambda f, **k: FakeBenchmarkResult([0.0], [0.004])) == pytest.approx(0.004)
    with pytest.raises(ValueError, match="n_repeat=0"):
        gpu.profile(lambda: None, 0, fake_benchmark)


class FakePool:
    """CuPy's memory pool, reduced to used bytes: malloc adds, the returned pointer's free() subtracts."""

    def __init__(self):
        self.used = 1000

    def used_bytes(self):
        return self.used

    def malloc(self, size):
        self.used += size
        return types.SimpleNamespace(free=lambda: setattr(self, "used", self.used - size))


def _fake_cupy(pool):
    allocators = []
    cuda = types.SimpleNamespace(
        set_allocator=allocators.append, Device=lambda: types.SimpleNamespace(synchronize=lambda: None)
    )
    return types.SimpleNamespace(get_default_memory_pool=lambda: pool, cuda=cuda), allocators


def test_peak_bytes_counts_allocated_bytes_with_frees_seen():
    pool = FakePool()
    cupy, allocators = _fake_cupy(pool)

    def call():  # 300 live, then 100 freed, then 50 more: the peak above the start is 300
        allocate = allocators[-1]
        a = allocate(300)
        a.free()
        allocate(100)
        allocate(50)

    assert gpu.peak_bytes(call, None, cupy) == 300
    assert allocators[-1] == pool.malloc  # the pool's own allocator is back afterwards


def test_peak_bytes_restores_the_allocator_when_the_call_fails():
    pool = FakePool()
    cupy, allocators = _fake_cupy(pool)
    with pytest.raises(RuntimeError):
        gpu.peak_bytes(lambda: (_ for _ in ()).throw(RuntimeError("boom")), None, cupy)
    assert allocators[-1] == pool.malloc


def _fake_torch(new_api):
    matmul = types.SimpleNamespace(allow_tf32=True)
    cudnn = types.SimpleNamespace(allow_tf32=True)
    if new_api:
        matmul.fp32_precision = "tf32"
        cudnn.conv = types.SimpleNamespace(fp32_precision="tf32")
    return types.SimpleNamespace(backends=types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=matmul), cudnn=cudnn))


@pytest.mark.parametrize("new_api", [True, False], ids=["fp32_precision", "allow_tf32"])
def test_disable_tf32_on_both_torch_apis_and_records_it(new_api, monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "0")
    torch = _fake_torch(new_api)
    state = gpu.disable_tf32(torch)
    if new_api:
        assert torch.backends.cuda.matmul.fp32_precision == "ieee" == torch.backends.cudnn.conv.fp32_precision
        assert state["torch_matmul"] == "ieee" == state["torch_cudnn_conv"]
    else:
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
        assert state["torch_matmul"] == "allow_tf32=False" == state["torch_cudnn_conv"]
    assert state["CUPY_TF32"] == "0"


def test_run_settings_name_the_card_and_the_tf32_state(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "0")
    runtime = types.SimpleNamespace(
        getDeviceProperties=lambda index: {"name": b"NVIDIA H200"}, runtimeGetVersion=lambda: 13000,
        driverGetVersion=lambda: 13000,
    )  # fmt: skip
    cupy = types.SimpleNamespace(
        __version__="14.2.0", cuda=types.SimpleNamespace(runtime=runtime, Device=lambda: types.SimpleNamespace(id=0))
    )
    settings = gpu.run_settings(_fake_torch(True), cupy)
    assert settings["gpu"] == "NVIDIA H200" and settings["cupy"] == "14.2.0" and settings["n_repeat"] == gpu.N_REPEAT
    assert settings["tf32"]["torch_matmul"] == "ieee" and settings["tf32"]["CUPY_TF32"] == "0"


def _cuda_error_class():
    return type("CUDARuntimeError", (RuntimeError,), {"__module__": "cupy_backends.cuda.api.runtime"})


def test_is_cuda_error_tells_cuda_errors_from_ours():
    assert gpu.is_cuda_error(_cuda_error_class()("cudaErrorIllegalAddress"))
    assert gpu.is_cuda_error(type("CompileException", (Exception,), {})("nvrtc"))
    assert not gpu.is_cuda_error(ValueError("groups=3 must divide C_in=64"))


def test_a_cuda_error_costs_one_config_not_the_run(monkeypatch):
    error = _cuda_error_class()

    def broken(config, *args):
        args[-1].append({"config": config.name, "pass": "forward", "contender": "cupy"})  # a record before the error
        raise error("cudaErrorIllegalAddress: an illegal memory access was encountered")

    monkeypatch.setattr(measure, "_measure_config", broken)
    config = QUICK_CONFIGS["dense-3x3-tiny"]
    records = measure.measure_config(config, ["cupy"], [], ["forward"], "float32", 1, 1, "gpu", None, 0.0, None)
    assert records[0]["contender"] == "cupy"
    assert records[1]["error"] is True and records[1]["skipped"].startswith("CUDA error: CUDARuntimeError: cuda")
    with pytest.raises(ValueError):  # our own bugs still surface
        monkeypatch.setattr(measure, "_measure_config", lambda *a: (_ for _ in ()).throw(ValueError("ours")))
        measure.measure_config(config, ["cupy"], [], ["forward"], "float32", 1, 1, "gpu", None, 0.0, None)
    with pytest.raises(error):  # and on the CPU nothing is swallowed
        monkeypatch.setattr(measure, "_measure_config", broken)
        measure.measure_config(config, ["im2col"], [], ["forward"], "float32", 1, 1, "cpu", None, 0.0, None)


def test_no_settle_pause_before_gpu_calls(monkeypatch):
    sleeps, timed = [], []
    monkeypatch.setattr(measure.time, "sleep", sleeps.append)
    monkeypatch.setattr(measure, "time_once", lambda function, on_gpu: timed.append(on_gpu) or 0.001)
    contenders = [
        measure.Contender("cupy", "backend", "gpu", lambda: None),
        measure.Contender("numba", "backend", "cpu", lambda: None),
    ]
    measure._time_rounds("x", contenders, 2, 0.25, open(os.devnull, "w"))
    assert timed == [True, False] * 3
    assert sleeps == [0.0, 0.25] * 3  # the GPU contender never waits: its clocks would drop
