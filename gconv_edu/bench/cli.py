"""``gconv-edu bench``: parse the options, check them and the output paths before any work, run, report."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

from .. import backends as registry
from ..configs import CONFIG_FIELDS, CONFIG_SETS, NAMED_CONFIGS, parse_config
from ..machine import check_threads, machine_name, thread_limit, torch_or_none
from . import gpu, measure, peak, report


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0 (NaN, inf and negatives are usage errors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def _writable(parser: argparse.ArgumentParser, option: str, path: str | None) -> None:
    """Refuse an output path whose folder cannot be created or written, before any work is done."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        parser.error(f"{option} {path!r} is a directory; give a file path")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"{option} {path!r}: cannot create its folder ({error.strerror})")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        parser.error(f"{option} {path!r} is not writable")


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gconv-edu bench", description="Benchmark backends x configs x passes.")
    parser.add_argument(
        "--config",
        action="append",
        help=f"a named config {sorted(NAMED_CONFIGS)}, a sweep layer (--list-configs) or {CONFIG_FIELDS}; repeatable",
    )
    parser.add_argument(
        "--configs",
        choices=sorted(CONFIG_SETS),
        help="a set of configs: named (the default), sweep (18 further layers, to re-derive auto), all, quick",
    )
    parser.add_argument("--list-configs", action="store_true", help="print every config set and exit")
    defaults = " ".join(measure.DEFAULT_CPU_BACKENDS)
    parser.add_argument("--backends", nargs="+", help=f"backends to time (default: {defaults} on the CPU)")
    parser.add_argument("--no-peer", action="store_true", help="do not time PyTorch")
    parser.add_argument("--passes", nargs="+", choices=measure.PASSES, default=list(measure.PASSES))
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls after the warm-up (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every contender (Numba, BLAS, torch)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--json", help="write the machine, settings and every record to this JSON file")
    parser.add_argument("--plot", help="PNG path (default: bench_cpu.png or bench_gpu.png in the figures folder)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--settle",
        type=_seconds,
        default=measure.DEFAULT_SETTLE_S,
        help="seconds to wait before every timed call (0 in --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny configs, 2 repeats, no settling (for tests)")
    parser.add_argument(
        "--peak-size",
        type=_positive_int,
        default=peak.PEAK_SIZE,
        help=f"n of the n x n GEMM timed first for the machine's peak (default {peak.PEAK_SIZE}; 256 in --quick)",
    )
    parser.add_argument("--no-peak", action="store_true", help="do not measure the peak (no '%% peak' column)")
    return parser


def list_configs() -> str:
    """Every config set, one line per layer: name, N, C_in -> C_out, H x W, kernel, stride, padding, groups."""
    lines = []
    for set_name, configs in CONFIG_SETS.items():
        if set_name == "all":
            continue
        lines.append(f"{set_name} ({len(configs)}):")
        for c in configs.values():
            lines.append(
                f"  {c.name:<24} N={c.batch} {c.in_channels}->{c.out_channels} {c.height}x{c.width} "
                f"k={c.kernel} stride={c.stride} pad={c.padding} groups={c.groups}"
            )
    lines.append("all: named + sweep")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``gconv-edu bench [--config NAME|N,Cin,Cout,H,W,k,stride,pad,groups ...] [--backends ...] ...``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_configs:
        print(list_configs())
        return 0
    if args.config and args.configs:
        parser.error("give --config NAME... or --configs SET, not both")
    try:
        default_set = args.configs or ("quick" if args.quick else "named")
        names = args.config or list(CONFIG_SETS[default_set])
        configs = [parse_config(c) for c in names]
    except ValueError as error:
        parser.error(str(error))
    try:
        check_threads(args.threads)
    except ValueError as error:
        parser.error(f"--threads: {error}")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be >= 1")
    _writable(parser, "--json", args.json)
    if not args.no_plot:
        _writable(parser, "--plot", args.plot)
    default_backends = measure.DEFAULT_GPU_BACKENDS if args.device == "gpu" else measure.DEFAULT_CPU_BACKENDS
    backends = args.backends or list(default_backends)
    peers = () if args.no_peer else ("torch",)
    repeats = 2 if args.quick else args.repeats
    settle = 0.0 if args.quick else args.settle
    try:
        measure.check_settings(backends, peers, args.passes, args.dtype, repeats, args.device, settle)
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    torch = torch_or_none() if peers else None
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
            "settle_s": settle,
            **(gpu.run_settings(torch) if args.device == "gpu" else {}),  # card, CuPy, TF32 off on both sides
        }
        _print_header(settings, args.device)
        machine_peak = None
        if not args.no_peak and args.device == "cpu":
            size = min(args.peak_size, 256) if args.quick else args.peak_size
            print(f"[bench] machine peak: {size}^3 GEMM (numpy{', torch' if torch else ''})", file=sys.stderr)
            machine_peak = peak.measure_peak(args.dtype, size, torch=torch, settle_s=settle)
        print(peak.describe_peak(machine_peak, args.threads))
        records = []
        for config in configs:
            records += measure.measure_config(
                config, backends, peers, args.passes, args.dtype, repeats, args.threads, args.device, sys.stderr,
                settle, torch,
            )  # fmt: skip
    measure.annotate(records, machine_peak)
    print(report.format_table(records))
    print(f"\nauto rule (CPU): {registry.AUTO_RULE}")
    winograd_auto = getattr(registry, "WINOGRAD_AUTO", None)  # the hook of issue 14.4, where the registry has it
    if winograd_auto is not None:
        print(f"winograd in auto (backends.WINOGRAD_AUTO): {'on' if winograd_auto else 'off'}")
    print("auto vs the fastest of our other backends in this run:")
    print(report.auto_summary(records))
    if args.json:
        print(f"[json] {report.write_json(args.json, settings, configs, records, machine_peak)}")
    if not args.no_plot:
        from ..viz import figures_dir

        target = args.plot or figures_dir() / f"bench_{args.device}.png"
        path = report.plot(records, target, f" ({counts.get('numba')} threads, {args.dtype})")
        print(f"[figure] {path}")
    return 0


def _print_header(settings: dict, device: str) -> None:
    print(f"gconv-edu bench on {settings['machine']}, {settings['date']}")
    print(f"threads: {settings['threads']}  (load average {settings['load_average']})")
    memory = (
        "peak MiB: allocated bytes, CuPy pool and torch.cuda alike (CPU rows: tracemalloc)"
        if device == "gpu"
        else "peak MiB: NumPy/Numba allocations (tracemalloc)"
    )
    repeats = settings["repeats"]
    print(f"{settings['dtype']}, median of {repeats} timed calls after one warm-up (spread: min-max); {memory}")
