"""``gconv-edu bench``: backends x configs x passes, PyTorch as a peer, one table, JSON and a plot.

What is measured, and how:

* every contender (our backends, ``auto``, and PyTorch when importable) runs with the SAME thread count: Numba's pool
  (``numba.set_num_threads``), the BLAS pools (``threadpoolctl``) and ``torch.set_num_threads``; the counts are printed;
* the first call is a warm-up and is not timed with the rest; its extra time over the median is reported as
  ``warmup_ms`` (for ``numba`` that is JIT compilation, or loading it from the cache);
* the timed calls run in rounds (every contender once per round), so a burst of load on a shared machine hits every
  contender alike instead of whichever happened to be running, and each waits ``--settle`` seconds first, so that
  the previous contender's spinning worker threads (OpenBLAS: ~0.1-0.2 s) do not take its cores;
* the median of ``repeats`` calls is the number, min and max give the spread; GFLOP/s counts
  :attr:`ConvGeometry.flops` (forward) plus :attr:`ConvGeometry.backward_flops` (forward+backward);
* peak extra memory: the peak of traced allocations during one call, outputs included, seen by ``tracemalloc``.
  NumPy reports its buffers to it, and Numba's arrays (also those a kernel allocates inside ``prange``, per thread)
  come from Python's raw allocator, which it hooks (checked: four 19 MiB buffers in a 2-thread prange show as a
  38 MiB peak). PyTorch's allocator is invisible to it, so PyTorch gets no number;
* the roofline of each config: arithmetic intensity = FLOPs / :meth:`ConvGeometry.min_bytes` (each array touched once).

``--device gpu`` times device-resident CuPy arrays with ``cupyx.profiler.benchmark`` (CUDA events) for ``cupy``,
``cupy-raw``, PyTorch CUDA (TF32 off) and one CPU backend, so one table shows CPU against GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import api
from .backends import available_backends, backend_names, choose_auto, get_backend
from .configs import CONFIG_FIELDS, NAMED_CONFIGS, QUICK_CONFIGS, LayerConfig, parse_config
from .geometry import ConvGeometry

PASSES = ("forward", "forward+backward")
DEFAULT_CPU_BACKENDS = ("im2col", "numba", "auto")  # "naive" only on request: Python loops, minutes per config
DEFAULT_GPU_BACKENDS = ("cupy", "cupy-raw", "numba")
# After a call, OpenBLAS's worker threads keep spinning for ~0.1-0.2 s (libgomp's, for Numba and PyTorch, for much
# less), taking the cores from whoever runs next: measured, numba on resnext-g32 right after an im2col call took
# 16.0 ms, 8.9 ms after a 0.2 s pause, 8.4 ms after itself. So every timed call waits this long first.
DEFAULT_SETTLE_S = 0.25


# --------------------------------------------------------------------------- environment
def machine_name() -> str:
    """CPU model (from /proc/cpuinfo where it exists) and logical CPU count."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()})"


def _torch() -> Any | None:
    """PyTorch if importable (a peer, never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def blas_pools(pools: list[dict[str, Any]]) -> list[str]:
    """``api:threads`` (and the kernel family OpenBLAS picked, which OPENBLAS_CORETYPE can force) per thread pool."""
    names = []
    for pool in pools:
        kernel = f" ({pool['architecture']})" if pool.get("architecture") else ""
        names.append(f"{pool['internal_api']}:{pool['num_threads']}{kernel}")
    return names


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[dict[str, Any]]:
    """Give Numba, the BLAS pools and PyTorch the same thread count; yield what each engine reports."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} must be a positive int")
    from threadpoolctl import threadpool_info, threadpool_limits

    counts: dict[str, Any] = {}
    restore: list[Callable[[], None]] = []
    try:
        import numba

        if threads > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads={threads} exceeds Numba's pool of {numba.config.NUMBA_NUM_THREADS}")
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        restore.append(lambda: numba.set_num_threads(previous))
        counts["numba"] = numba.get_num_threads()
    except ImportError:
        counts["numba"] = "not installed"
    torch = _torch()
    if torch is not None:
        previous_torch = torch.get_num_threads()
        torch.set_num_threads(threads)
        restore.append(lambda: torch.set_num_threads(previous_torch))
        counts["torch"] = torch.get_num_threads()
    with threadpool_limits(limits=threads):
        counts["blas"] = blas_pools(threadpool_info())
        try:
            yield counts
        finally:
            for undo in restore:
                undo()


# --------------------------------------------------------------------------- contenders
def _arrays(geom: ConvGeometry, dtype: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    """x: (N, C_in, H, W), weight: (C_out, C_in/G, kH, kW), bias: (C_out,), dy: (N, C_out, H_out, W_out)."""
    rng = np.random.default_rng(seed)
    shapes = (geom.x_shape, geom.weight_shape, (geom.out_channels,), geom.y_shape)
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)


def _ours(name: str, config: LayerConfig, arrays: Sequence[Any], pass_: str) -> Callable[[], Any]:
    x, weight, bias, dy = arrays
    options = {"stride": config.stride, "padding": config.padding, "groups": config.groups, "backend": name}
    if pass_ == "forward":
        return lambda: api.conv2d(x, weight, bias, **options)

    def forward_backward() -> Any:
        api.conv2d(x, weight, bias, **options)
        return api.conv2d_backward(dy, x, weight, **options)

    return forward_backward


def _torch_peer(torch: Any, config: LayerConfig, arrays: Sequence[Any], pass_: str, device: str) -> Callable[[], Any]:
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


# --------------------------------------------------------------------------- measuring
def _time_once(function: Callable[[], Any], on_gpu: bool) -> float:
    """Seconds for one call: a wall clock on the CPU; on the GPU, CUDA events around it (cupyx.profiler.benchmark)."""
    if on_gpu:
        from cupyx.profiler import benchmark

        return float(benchmark(function, n_repeat=1, n_warmup=0).gpu_times[0][0])
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _peak_numpy_bytes(function: Callable[[], Any]) -> int:
    """Peak bytes NumPy and Numba allocated during one call (tracemalloc), outputs included."""
    tracemalloc.start()
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def _peak_gpu_bytes(function: Callable[[], Any], torch: Any | None) -> int:
    """Peak growth of CuPy's memory pool (or PyTorch's CUDA allocator, for ``torch``) during one call."""
    if torch is not None:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    import cupy

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.total_bytes()
    function()
    cupy.cuda.Device().synchronize()
    return pool.total_bytes() - before


def gpu_unavailable_reason() -> str | None:
    """None when the GPU backends can run here, else why not (the message ``--device gpu`` stops with)."""
    return get_backend("cupy").availability()


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


# --------------------------------------------------------------------------- the benchmark
def _record(config: LayerConfig, pass_: str, contender: str, kind: str, device: str, **fields: Any) -> dict[str, Any]:
    return {"config": config.name, "pass": pass_, "contender": contender, "kind": kind, "device": device, **fields}


def _summary(first: float, times: list[float], peak: int | None) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "ms_median": 1e3 * median,
        "ms_min": 1e3 * min(times),
        "ms_max": 1e3 * max(times),
        "warmup_ms": 1e3 * max(0.0, first - median),
        "peak_extra_mib": None if peak is None else peak / 2**20,
    }


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
) -> list[dict[str, Any]]:
    """Time every (config, pass, contender); one dict per measurement (or per skip, with ``skipped``: the reason).

    Keys: config, pass, contender, kind ("backend" | "peer"), device, dtype, threads, ms_median, ms_min, ms_max,
    warmup_ms, gflops, ratio_to_peer (our time / the first peer's time), peer, peak_extra_mib, auto_choice
    (what ``auto`` picked), and the config's roofline numbers (see :func:`roofline`).
    ``device="gpu"`` times CuPy arrays on the GPU; CPU backends in ``backends`` still run on NumPy arrays.
    ``settle_s``: pause before every timed call, so the previous contender's worker threads are parked (see
    :data:`DEFAULT_SETTLE_S`).
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r} must be 'cpu' or 'gpu'")
    if device == "gpu" and (reason := gpu_unavailable_reason()) is not None:
        raise RuntimeError(f"gconv-edu bench --device gpu: no usable GPU: {reason}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'float64'")
    if not isinstance(settle_s, (int, float)) or settle_s < 0:
        raise ValueError(f"settle_s={settle_s!r} must be a number of seconds >= 0")
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
    configs = [parse_config(c) if isinstance(c, str) else c for c in configs]
    usable = set(available_backends()) | {"auto"}
    progress = sys.stderr if progress is None else progress
    torch = _torch() if peers else None
    records: list[dict[str, Any]] = []
    with thread_limit(threads):
        for config in configs:
            geom = config.geometry()
            host = _arrays(geom, dtype)
            arrays_on = {"cpu": host}
            if device == "gpu":
                import cupy

                arrays_on["gpu"] = tuple(cupy.asarray(a) for a in host)
            common = {"dtype": dtype, "threads": threads, **roofline(geom, np.dtype(dtype).itemsize)}
            peer_and_backends = [(peer, "peer") for peer in peers] + [(name, "backend") for name in backends]
            for pass_ in passes:
                flops = geom.flops + (geom.backward_flops if pass_ != "forward" else 0)
                prepared = []  # (name, kind, device it runs on, the call to time)
                for name, kind in peer_and_backends:
                    if kind == "peer":
                        where = "cuda" if device == "gpu" else "cpu"
                        if torch is None:
                            records.append(_record(config, pass_, name, kind, device, skipped="torch not importable"))
                            continue
                        if where == "cuda":
                            torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32: same arithmetic as ours
                            torch.backends.cuda.matmul.allow_tf32 = False
                        prepared.append((name, kind, device, _torch_peer(torch, config, host, pass_, where)))
                    elif name not in usable:
                        reason = get_backend(name).availability()
                        records.append(_record(config, pass_, name, kind, device, skipped=reason))
                    else:
                        gpu = device == "gpu" and (name == "auto" or get_backend(name).device == "gpu")
                        on = "gpu" if gpu else "cpu"
                        prepared.append((name, kind, on, _ours(name, config, arrays_on[on], pass_)))
                first, times = {}, {name: [] for name, *_ in prepared}
                for name, _, on, function in prepared:  # warm-up: compilation, caches, allocator pools
                    print(f"[bench] {config.name} {pass_} {name}: warm-up", file=progress, flush=True)
                    time.sleep(settle_s)
                    first[name] = _time_once(function, on == "gpu")
                # Rounds: every contender once per round, so a burst of load on a shared machine hits all alike.
                for round_ in range(repeats):
                    print(f"[bench] {config.name} {pass_}: round {round_ + 1}/{repeats}", file=progress, flush=True)
                    for name, _, on, function in prepared:
                        time.sleep(settle_s)
                        times[name].append(_time_once(function, on == "gpu"))
                peer_ms = None
                for name, kind, on, function in prepared:
                    if on == "gpu":
                        peak = _peak_gpu_bytes(function, torch if kind == "peer" else None)
                    else:
                        peak = None if kind == "peer" else _peak_numpy_bytes(function)
                    result = _summary(first[name], times[name], peak)
                    if kind == "peer" and peer_ms is None:
                        peer_ms = result["ms_median"]
                    record = _record(config, pass_, name, kind, on, **common, **result)
                    record["gflops"] = flops / (result["ms_median"] * 1e6)
                    record["peer"] = peers[0] if peers else None
                    record["ratio_to_peer"] = None if peer_ms is None else result["ms_median"] / peer_ms
                    if name == "auto":
                        record["auto_choice"] = choose_auto(geom, on_gpu=on == "gpu")
                    records.append(record)
    return records


# --------------------------------------------------------------------------- reporting
def format_table(records: Sequence[dict[str, Any]]) -> str:
    """One block per config: its roofline line, then one row per (pass, contender)."""
    lines = []
    header = (
        f"{'pass':<17} {'contender':<10} {'device':<6} {'median ms':>10} {'min-max ms':>17} {'GFLOP/s':>8} "
        f"{'vs peer':>8} {'peak MiB':>9} {'warm-up ms':>11}  note"
    )
    for config in dict.fromkeys(r["config"] for r in records):
        rows = [r for r in records if r["config"] == config]
        measured = next((r for r in rows if "skipped" not in r), None)
        lines.append("")
        if measured is not None:
            lines.append(
                f"{config}: {measured['gflop_forward']:.3f} GFLOP forward, {measured['gflop_forward_backward']:.3f} "
                f"forward+backward; arithmetic intensity {measured['intensity_forward']:.1f} FLOP/B forward, "
                f"{measured['intensity_forward_backward']:.1f} forward+backward ({measured['dtype']})"
            )
        else:
            lines.append(config)
        lines.append(header)
        for r in rows:
            if "skipped" in r:
                lines.append(f"{r['pass']:<17} {r['contender']:<10} {r['device']:<6} skipped: {r['skipped']}")
                continue
            ratio = "-" if r["ratio_to_peer"] is None else f"{r['ratio_to_peer']:.2f}"
            peak = "n/a" if r["peak_extra_mib"] is None else f"{r['peak_extra_mib']:.1f}"
            spread = f"{r['ms_min']:.2f}-{r['ms_max']:.2f}"
            note = f"auto -> {r['auto_choice']}" if r.get("auto_choice") else ""
            lines.append(
                f"{r['pass']:<17} {r['contender']:<10} {r['device']:<6} {r['ms_median']:>10.2f} {spread:>17} "
                f"{r['gflops']:>8.1f} {ratio:>8} {peak:>9} {r['warmup_ms']:>11.1f}  {note}"
            )
    return "\n".join(lines)


def auto_summary(records: Sequence[dict[str, Any]]) -> str:
    """Per (config, pass): what ``auto`` picked, the fastest of our other backends in THIS run, and auto / fastest."""
    lines = []
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
        if not others:
            continue
        best = min(others, key=lambda r: r["ms_median"])
        ratio = record["ms_median"] / best["ms_median"]
        lines.append(
            f"  {record['config']:<22} {record['pass']:<17} auto -> {record['auto_choice']:<7} fastest here: "
            f"{best['contender']:<7} ({best['ms_median']:.2f} ms); auto / fastest = {ratio:.2f}"
        )
    return "\n".join(lines)


def plot(records: Sequence[dict[str, Any]], path: str | Path, title_note: str = "") -> Path:
    """Bars of time relative to the peer (or GFLOP/s without one), one panel per pass; returns the PNG's path."""
    from .viz import PALETTE, plt

    measured = [r for r in records if "skipped" not in r]
    passes = list(dict.fromkeys(r["pass"] for r in measured))
    configs = list(dict.fromkeys(r["config"] for r in measured))
    contenders = list(dict.fromkeys(r["contender"] for r in measured))
    relative = all(r["ratio_to_peer"] is not None for r in measured)
    fig, axes = plt.subplots(1, max(1, len(passes)), figsize=(6.5 * max(1, len(passes)), 4.8), squeeze=False)
    width = 0.8 / max(1, len(contenders))
    for ax, pass_ in zip(axes[0], passes):
        for index, contender in enumerate(contenders):
            values = []
            for config in configs:
                match = [r for r in measured if (r["config"], r["pass"], r["contender"]) == (config, pass_, contender)]
                value = (match[0]["ratio_to_peer"] if relative else match[0]["gflops"]) if match else np.nan
                values.append(value)
            positions = np.arange(len(configs)) + (index - (len(contenders) - 1) / 2) * width
            ax.bar(positions, values, width, label=contender, color=PALETTE[index % len(PALETTE)])
        if relative:
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_ylabel("time / PyTorch time (lower is faster)")
        else:
            ax.set_ylabel("GFLOP/s (higher is faster)")
        ax.set_xticks(np.arange(len(configs)), configs, rotation=20, ha="right")
        ax.set_xlabel("config")
        ax.set_title(pass_)
        ax.legend(fontsize=8)
    fig.suptitle(_finding(measured, relative) + title_note, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _finding(measured: Sequence[dict[str, Any]], relative: bool) -> str:
    """The plot's title: how often the best of our backends beats the peer, forward+backward."""
    last_pass = [r for r in measured if r["pass"] == PASSES[-1]] or list(measured)
    configs = list(dict.fromkeys(r["config"] for r in last_pass))
    if not relative or not configs:
        return f"Throughput per backend ({len(configs)} configs)"
    wins = 0
    for config in configs:
        ours = [r["ratio_to_peer"] for r in last_pass if r["config"] == config and r["kind"] == "backend"]
        wins += bool(ours) and min(ours) < 1.0
    return f"{last_pass[0]['pass']}: our fastest backend beats PyTorch on {wins} of {len(configs)} configs"


def main(argv: list[str]) -> int:
    """``gconv-edu bench [--config NAME|N,Cin,Cout,H,W,k,stride,pad,groups ...] [--backends ...] ...``."""
    parser = argparse.ArgumentParser(prog="gconv-edu bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", help=f"a named config {sorted(NAMED_CONFIGS)} or {CONFIG_FIELDS}")
    parser.add_argument("--backends", nargs="+", help="backends to time (default: im2col numba auto on the CPU)")
    parser.add_argument("--no-peer", action="store_true", help="do not time PyTorch")
    parser.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls after the warm-up (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every contender (Numba, BLAS, torch)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--json", help="write the machine, settings and every record to this JSON file")
    parser.add_argument("--plot", help="PNG path (default figures/bench_cpu.png or figures/bench_gpu.png)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--settle", type=float, default=DEFAULT_SETTLE_S, help="seconds to wait before every timed call (0 in --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny configs, 2 repeats, no settling (for tests)")
    args = parser.parse_args(argv)
    try:
        if args.quick:
            configs = [parse_config(c) for c in args.config] if args.config else list(QUICK_CONFIGS.values())
        else:
            configs = [parse_config(c) for c in (args.config or list(NAMED_CONFIGS))]
    except ValueError as error:
        parser.error(str(error))
    try:
        with thread_limit(args.threads):
            pass
    except ValueError as error:
        parser.error(f"--threads: {error}")
    default_backends = DEFAULT_GPU_BACKENDS if args.device == "gpu" else DEFAULT_CPU_BACKENDS
    backends = args.backends or list(default_backends)
    peers = () if args.no_peer else ("torch",)
    repeats = 2 if args.quick else args.repeats
    torch = _torch() if peers else None
    with thread_limit(args.threads) as counts:
        settings = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_name(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": None if torch is None else torch.__version__,
            "threads": counts,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": args.device,
            "dtype": args.dtype,
            "repeats": repeats,
            "settle_s": 0.0 if args.quick else args.settle,
        }
    print(f"gconv-edu bench on {settings['machine']}, {settings['date']}")
    print(f"threads: {counts}  (load average {settings['load_average']})")
    print(
        f"{args.dtype}, median of {repeats} timed calls after one warm-up (spread: min-max); "
        + (
            "peak MiB: CuPy pool / torch.cuda allocator growth (CPU rows: tracemalloc)"
            if args.device == "gpu"
            else "peak MiB: NumPy/Numba allocations (tracemalloc)"
        )
    )
    try:
        settle = 0.0 if args.quick else args.settle
        records = run_benchmark(
            configs, backends, peers, args.passes, args.dtype, repeats, args.threads, args.device, settle_s=settle
        )
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(records))
    from .backends import AUTO_RULE

    print(f"\nauto rule (CPU): {AUTO_RULE}")
    print(auto_summary(records))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": settings, "configs": [asdict(c) for c in configs], "records": records}
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print(f"[json] {args.json}")
    if not args.no_plot:
        default = Path(__file__).resolve().parents[1] / "figures" / f"bench_{args.device}.png"
        path = plot(records, args.plot or default, f" ({counts.get('numba')} threads, {args.dtype})")
        print(f"[figure] {path}")
    return 0
