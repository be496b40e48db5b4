"""Reporting: the benchmark's table, the auto summary, the JSON payload and the plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .measure import PASSES, compare_auto


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """One block per config: its roofline line, then one row per (pass, contender)."""
    lines = []
    header = (
        f"{'pass':<17} {'contender':<10} {'device':<6} {'median ms':>10} {'min-max ms':>17} {'GFLOP/s':>8} "
        f"{'% peak':>7} {'vs peer':>8} {'peak MiB':>9} {'warm-up ms':>11}  note"
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
            notes = [f"auto -> {r['auto_choice']}"] if r.get("auto_choice") else []
            if r.get("gflops_kind") == "effective":
                notes.append("effective GFLOP/s (direct FLOPs / time)")
            fraction = r.get("fraction_of_peak")
            percent = "-" if fraction is None else f"{100 * fraction:.1f}%"
            lines.append(
                f"{r['pass']:<17} {r['contender']:<10} {r['device']:<6} {r['ms_median']:>10.2f} {spread:>17} "
                f"{r['gflops']:>8.1f} {percent:>7} {ratio:>8} {peak:>9} {r['warmup_ms']:>11.1f}  {'; '.join(notes)}"
            )
    return "\n".join(lines)


def auto_summary(records: Sequence[dict[str, Any]]) -> str:
    """Per (config, pass): what ``auto`` picked, the fastest of our other backends in THIS run, and auto / fastest.

    Reads the fields :func:`gconv_edu.bench.measure.compare_auto` adds (added here when absent); ends with a count.
    """
    lines, picked_fastest, compared = [], 0, 0
    for record in records:
        if record["contender"] != "auto" or "skipped" in record:
            continue
        if "auto_vs_fastest" not in record:
            compare_auto(records)
        if record["fastest_backend"] is None:
            continue
        compared += 1
        picked_fastest += record["auto_choice"] == record["fastest_backend"]
        lines.append(
            f"  {record['config']:<22} {record['pass']:<17} auto -> {record['auto_choice']:<8} fastest here: "
            f"{record['fastest_backend']:<8} ({record['fastest_ms']:.2f} ms); auto / fastest = "
            f"{record['auto_vs_fastest']:.2f}"
        )
    if not compared:
        return "  (auto was not timed beside another backend: add auto and others to --backends)"
    lines.append(f"  auto picked this run's fastest backend in {picked_fastest} of {compared} (config, pass) pairs")
    return "\n".join(lines)


def plot(records: Sequence[dict[str, Any]], path: str | Path, title_note: str = "") -> Path:
    """Bars of time relative to the peer (or GFLOP/s without one), one panel per pass; returns the PNG's path."""
    from ..viz import PALETTE, plt

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


def write_json(
    path: str | Path,
    settings: dict[str, Any],
    configs: Sequence[Any],
    records: Sequence[dict[str, Any]],
    peak: dict[str, Any] | None = None,
) -> Path:
    """The machine, the settings, the measured peak (:mod:`.peak`; null when not measured), the configs and every
    record, as one JSON file."""
    from dataclasses import asdict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": settings, "peak": peak, "configs": [asdict(c) for c in configs], "records": list(records)}
    path.write_text(json.dumps(payload, indent=1))
    return path
