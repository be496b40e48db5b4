"""Measuring: the contenders of one (config, pass), their warm-up, the interleaved timed rounds, one record each.

See :mod:`gconv_edu.bench` for what is measured and why.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import api
from ..backends import available_backends, backend_names, choose_auto, get_backend
from ..configs import LayerConfig, parse_config
from ..geometry import ConvGeometry
from ..machine import thread_limit, torch_or_none
from . import gpu
from .peak import PEAK_SIZE, add_peak_fractions, measure_peak

PASSES = ("forward", "forward+backward")
# "naive" only on request (Python loops, minutes per config); winograd where registered (rows it does not support are
# skipped with its reason), so that auto can be compared with every fast backend
DEFAULT_CPU_BACKENDS = tuple(
    name for name in ("im2col", "numba", "winograd", "auto") if name in (*backend_names(), "auto")
)
DEFAULT_GPU_BACKENDS = ("cupy", "cupy-raw", "numba")
# After a call, OpenBLAS's worker threads keep spinning for ~0.1-0.2 s (libgomp's, for Numba and PyTorch, for much
# less), taking the cores from whoever runs next: measured, numba on resnext-g32 right after an im2col call took
# 16.0 ms, 8.9 ms after a 0.2 s pause, 8.4 ms after itself. So every timed call waits this long first.
DEFAULT_SETTLE_S = 0.25


@dataclass
class Contender:
    """One thing to time: our backend or a peer, where it runs, and the call itself."""

    name: str
    kind: str  # "backend" | "peer"
    device: str  # "cpu" | "gpu"
    call: Callable[[], Any]


# --------------------------------------------------------------------------- the calls
def random_arrays(geom: ConvGeometry, dtype: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    """x: (N, C_in, H, W), weight: (C_out, C_in/G, kH, kW), bias: (C_out,), dy: (N, C_out, H_out, W_out)."""
    rng = np.random.default_rng(seed)
    shapes = (geom.x_shape, geom.weight_shape, (geom.out_channels,), geom.y_shape)
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)


def our_call(name: str, config: LayerConfig, arrays: Sequence[Any], pass_: str) -> Callable[[], Any]:
    """Our backend ``name`` on ``arrays``; forward+backward = conv2d then conv2d_backward."""
    x, weight, bias, dy = arrays
    options = {"stride": config.stride, "padding": config.padding, "groups": config.groups, "backend": name}
    if pass_ == "forward":
        return lambda: api.conv2d(x, weight, bias, **options)

    def forward_backward() -> Any:
        api.conv2d(x, weight, bias, **options)
        return api.conv2d_backward(dy, x, weight, **options)

    return forward_backward


def torch_call(torch: Any, config: LayerConfig, arrays: Sequence[Any], pass_: str, device: str) -> Callable[[], Any]:
    """PyTorch's conv2d on the same data; forward+backward = forward, then autograd for dx, dw and db."""
    x, weight, bias, dy = (torch.as_tensor(np.asarray(a), device=device) for a in arrays)
    leaves = [t.requires_grad_(pass_ != "forward") for t in (x, weight, bias)]
    conv = torch.nn.functional.conv2d
    options = {"stride": config.stride, "padding": config.padding, "groups": config.groups}
    if pass_ == "forward":

        def forward() -> Any:
            with torch.no_grad():
                return conv(x, weight, bias, **options)

        return forward
    return lambda: torch.autograd.grad(conv(x, weight, bias, **options), leaves, dy)


# --------------------------------------------------------------------------- timing and memory
def time_once(function: Callable[[], Any], on_gpu: bool) -> float:
    """Seconds for one call: a wall clock on the CPU; on the GPU, CUDA events (see :func:`gpu.time_once`)."""
    if on_gpu:
        return gpu.time_once(function)
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def peak_numpy_bytes(function: Callable[[], Any]) -> int:
    """Peak bytes NumPy and Numba allocated during one call (tracemalloc), outputs included."""
    tracemalloc.start()
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def roofline(geom: ConvGeometry, itemsize: int) -> dict[str, float]:
    """FLOPs, compulsory bytes and arithmetic intensity (FLOP/byte) of the forward and forward+backward passes."""
    both = geom.flops + geom.backward_flops
    return {
        "gflop_forward": geom.flops / 1e9,
        "gflop_forward_backward": both / 1e9,
        "mb_forward": geom.min_bytes(itemsize) / 1e6,
        "mb_forward_backward": geom.min_bytes(itemsize, backward=True) / 1e6,
        "intensity_forward": geom.flops / geom.min_bytes(itemsize),
        "intensity_forward_backward": both / geom.min_bytes(itemsize, backward=True),
    }


def summary(first: float, times: list[float], peak: int | None) -> dict[str, Any]:
    """Median, spread and warm-up excess (ms) of one contender's timed calls; peak extra memory (MiB)."""
    median = statistics.median(times)
    return {
        "ms_median": 1e3 * median,
        "ms_min": 1e3 * min(times),
        "ms_max": 1e3 * max(times),
        "warmup_ms": 1e3 * max(0.0, first - median),
        "peak_extra_mib": None if peak is None else peak / 2**20,
    }


def _record(config: LayerConfig, pass_: str, contender: str, kind: str, device: str, **fields: Any) -> dict[str, Any]:
    return {"config": config.name, "pass": pass_, "contender": contender, "kind": kind, "device": device, **fields}


# --------------------------------------------------------------------------- the benchmark
def check_settings(
    backends: Sequence[str], peers: Sequence[str], passes: Sequence[str], dtype: str, repeats: int, device: str,
    settle_s: float,
) -> None:  # fmt: skip
    """Raise ValueError (RuntimeError for a missing GPU) naming the setting, before any work."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")
    if device == "gpu" and (reason := gpu.gpu_unavailable_reason()) is not None:
        raise RuntimeError(f"gconv-edu bench --device gpu: no usable GPU: {reason}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'float64'")
    if not isinstance(settle_s, (int, float)) or not np.isfinite(settle_s) or settle_s < 0:
        raise ValueError(f"settle_s={settle_s!r} must be a finite number of seconds >= 0")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a positive int")
    for pass_ in passes:
        if pass_ not in PASSES:
            raise ValueError(f"passes contains {pass_!r}; expected a subset of {PASSES}")
    for peer in peers:
        if peer != "torch":
            raise ValueError(f"peers contains {peer!r}; the only peer is 'torch'")
    for name in backends:
        if name != "auto" and name not in backend_names():
            raise ValueError(f"backends contains {name!r}; known: {backend_names() + ['auto']}")


def unsupported_reason(name: str, geom: ConvGeometry) -> str | None:
    """Why backend ``name`` does not compute this geometry (:meth:`Backend.supports`, e.g. winograd: 3x3, stride 1,
    dilation 1 only), or None. Its rows are then skipped with that reason instead of failing the run."""
    return get_backend(name).supports(geom)


def _contenders(
    config: LayerConfig, pass_: str, names: Sequence[tuple[str, str]], arrays_on: dict[str, Any], device: str,
    torch: Any | None, records: list[dict[str, Any]],
) -> list[Contender]:  # fmt: skip
    """The calls to time for one (config, pass); a skip record for each contender that cannot run here."""
    usable = set(available_backends()) | {"auto"}
    prepared = []
    for name, kind in names:
        if kind == "peer":
            if torch is None:
                records.append(_record(config, pass_, name, kind, device, skipped="torch not importable"))
                continue
            where = "cuda" if device == "gpu" else "cpu"
            if where == "cuda":
                gpu.disable_tf32(torch)
            prepared.append(Contender(name, kind, device, torch_call(torch, config, arrays_on["cpu"], pass_, where)))
        elif name not in usable:
            records.append(_record(config, pass_, name, kind, device, skipped=get_backend(name).availability()))
        elif name != "auto" and (reason := unsupported_reason(name, config.geometry())) is not None:
            records.append(_record(config, pass_, name, kind, device, skipped=f"not supported here: {reason}"))
        else:
            on = "gpu" if device == "gpu" and (name == "auto" or get_backend(name).device == "gpu") else "cpu"
            prepared.append(Contender(name, kind, on, our_call(name, config, arrays_on[on], pass_)))
    return prepared


def _time_rounds(
    label: str, prepared: Sequence[Contender], repeats: int, settle_s: float, progress: Any
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One warm-up call each, then ``repeats`` rounds with every contender once per round (fair under load).

    Progress goes to ``progress``: a tqdm bar over the rounds when it is a terminal, else one line per step (a log).
    """
    first, times = {}, {c.name: [] for c in prepared}
    bar = _progress_bar(label, repeats, progress)
    for c in prepared:  # warm-up: compilation, caches, allocator pools
        if bar is None:
            print(f"[bench] {label} {c.name}: warm-up", file=progress, flush=True)
        else:
            bar.set_postfix_str(f"warm-up {c.name}")
        time.sleep(0.0 if c.device == "gpu" else settle_s)  # a pause would let the GPU's clocks drop
        first[c.name] = time_once(c.call, c.device == "gpu")
    for round_ in range(repeats):
        if bar is None:
            print(f"[bench] {label}: round {round_ + 1}/{repeats}", file=progress, flush=True)
        else:
            bar.set_postfix_str("rounds")
        for c in prepared:
            time.sleep(0.0 if c.device == "gpu" else settle_s)
            times[c.name].append(time_once(c.call, c.device == "gpu"))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return first, times


def _progress_bar(label: str, rounds: int, stream: Any) -> Any | None:
    """A tqdm bar over ``rounds`` on ``stream`` when it is a terminal; None otherwise (then plain lines are printed)."""
    isatty = getattr(stream, "isatty", None)
    if stream is None or isatty is None or not isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=rounds, desc=f"[bench] {label}", unit="round", file=stream, leave=False, dynamic_ncols=True)


def _peak(contender: Contender, torch: Any | None) -> int | None:
    if contender.device == "gpu":
        return gpu.peak_bytes(contender.call, torch if contender.kind == "peer" else None)
    return None if contender.kind == "peer" else peak_numpy_bytes(contender.call)


def measure_config(
    config: LayerConfig, backends: Sequence[str], peers: Sequence[str], passes: Sequence[str], dtype: str,
    repeats: int, threads: int, device: str, progress: Any, settle_s: float, torch: Any | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every (pass, contender) of one config, already inside :func:`thread_limit`.

    On the GPU, a CUDA error (see :func:`gpu.is_cuda_error`) ends this config only: its records so far, then one
    record whose ``skipped`` says which error, with ``error: True``.
    """
    records: list[dict[str, Any]] = []
    try:
        _measure_config(
            config, backends, peers, passes, dtype, repeats, threads, device, progress, settle_s, torch, records
        )
    except Exception as error:
        if device != "gpu" or not gpu.is_cuda_error(error):
            raise
        message = f"CUDA error: {type(error).__name__}: {error}"
        records.append(_record(config, "-", "-", "error", device, skipped=message, error=True))
    return records


def _measure_config(
    config: LayerConfig, backends: Sequence[str], peers: Sequence[str], passes: Sequence[str], dtype: str,
    repeats: int, threads: int, device: str, progress: Any, settle_s: float, torch: Any | None,
    records: list[dict[str, Any]],
) -> None:  # fmt: skip
    geom = config.geometry()
    host = random_arrays(geom, dtype)
    arrays_on = {"cpu": host, **({"gpu": gpu.to_device(host)} if device == "gpu" else {})}
    common = {"dtype": dtype, "threads": threads, **roofline(geom, np.dtype(dtype).itemsize)}
    names = [(peer, "peer") for peer in peers] + [(name, "backend") for name in backends]
    for pass_ in passes:
        flops = geom.flops + (geom.backward_flops if pass_ != "forward" else 0)
        prepared = _contenders(config, pass_, names, arrays_on, device, torch, records)
        first, times = _time_rounds(f"{config.name} {pass_}", prepared, repeats, settle_s, progress)
        peer_ms = None
        for c in prepared:
            result = summary(first[c.name], times[c.name], _peak(c, torch))
            if c.device == "gpu":
                result.update(gpu.profile(c.call))  # gpu_ms (CUDA events) vs host_ms (time to issue the call)
            if c.kind == "peer" and peer_ms is None:
                peer_ms = result["ms_median"]
            record = _record(config, pass_, c.name, c.kind, c.device, **common, **result)
            record["gflops"] = flops / (result["ms_median"] * 1e6)
            record["peer"] = peers[0] if peers else None
            record["ratio_to_peer"] = None if peer_ms is None else result["ms_median"] / peer_ms
            if c.name == "auto":
                record["auto_choice"] = choose_auto(geom, on_gpu=c.device == "gpu")
            records.append(record)


def run_benchmark(
    configs: Sequence[LayerConfig | str],
    backends: Sequence[str],
    peers: Sequence[str] = ("torch",),
    passes: Sequence[str] = PASSES,
    dtype: str = "float32",
    repeats: int = 5,
    threads: int = 2,
    device: str = "cpu",
    progress: Any = None,
    settle_s: float = DEFAULT_SETTLE_S,
    peak_size: int | None = PEAK_SIZE,
) -> list[dict[str, Any]]:
    """Time every (config, pass, contender); one dict per measurement (or per skip, with ``skipped``: the reason).

    Keys: config, pass, contender, kind ("backend" | "peer"), device, dtype, threads, ms_median, ms_min, ms_max,
    warmup_ms, gflops, ratio_to_peer (our time / the first peer's time), peer, peak_extra_mib, auto_choice
    (what ``auto`` picked), and the config's roofline numbers (see :func:`roofline`); from :func:`annotate`:
    peak_gflops, fraction_of_peak (CPU rows; None without a peak), gflops_kind ("direct" | "effective"), and on
    auto's rows fastest_backend, fastest_ms, auto_vs_fastest.
    ``device="gpu"`` times CuPy arrays on the GPU; CPU backends in ``backends`` still run on NumPy arrays.
    ``settle_s``: pause before every timed call, so the previous contender's worker threads are parked (see
    :data:`DEFAULT_SETTLE_S`). ``peak_size``: the GEMM measured first for the machine's peak (:mod:`.peak`; on the
    CPU only); None skips it.
    """
    check_settings(backends, peers, passes, dtype, repeats, device, settle_s)
    configs = [parse_config(c) if isinstance(c, str) else c for c in configs]
    progress = sys.stderr if progress is None else progress
    torch = torch_or_none() if peers else None
    records: list[dict[str, Any]] = []
    with thread_limit(threads):
        peak = None
        if peak_size is not None and device == "cpu":
            peak = measure_peak(dtype, peak_size, torch=torch, settle_s=settle_s)
        for config in configs:
            records += measure_config(
                config, backends, peers, passes, dtype, repeats, threads, device, progress, settle_s, torch
            )
    annotate(records, peak)
    return records


def annotate(records: Sequence[dict[str, Any]], peak: dict[str, Any] | None) -> None:
    """Add ``peak_gflops`` and the peak fractions (:func:`.peak.add_peak_fractions`) to every measured record, and
    auto's comparison to auto's rows (:func:`compare_auto`)."""
    add_peak_fractions(records, peak)
    for record in records:
        if "skipped" not in record:
            record["peak_gflops"] = None if peak is None or record["device"] != "cpu" else peak["peak_gflops"]
    compare_auto(records)


def compare_auto(records: Sequence[dict[str, Any]]) -> None:
    """To each of auto's rows, add the fastest of our other backends in the same (config, pass) of this run:
    ``fastest_backend``, ``fastest_ms`` and ``auto_vs_fastest`` (auto's time / the fastest's; near 1.0 when auto
    picked it). All None when no other backend ran beside it."""
    for record in records:
        if record["contender"] != "auto" or "skipped" in record:
            continue
        others = [
            r
            for r in records
            if (r["config"], r["pass"]) == (record["config"], record["pass"])
            and r["kind"] == "backend"
            and r["contender"] != "auto"
            and "skipped" not in r
        ]
        best = min(others, key=lambda r: r["ms_median"]) if others else None
        record["fastest_backend"] = None if best is None else best["contender"]
        record["fastest_ms"] = None if best is None else best["ms_median"]
        record["auto_vs_fastest"] = None if best is None else record["ms_median"] / best["ms_median"]
