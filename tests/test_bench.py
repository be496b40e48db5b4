"""The benchmark: config parsing, records, the table, JSON and plot from `bench --quick`, the GPU path's refusal."""

from __future__ import annotations

import json

import pytest

from gconv_edu import bench
from gconv_edu.backends import choose_auto
from gconv_edu.bench import roofline, run_benchmark
from gconv_edu.configs import NAMED_CONFIGS, QUICK_CONFIGS, LayerConfig, parse_config

TINY = QUICK_CONFIGS["resnext-g32-tiny"]


def test_named_configs_are_the_issue_s():
    geom = NAMED_CONFIGS["alexnet-conv2"].geometry()
    assert (geom.batch, geom.in_channels, geom.out_channels, geom.kernel_h, geom.groups) == (8, 96, 256, 5, 2)
    assert geom.y_shape == (8, 256, 27, 27)
    assert NAMED_CONFIGS["mobilenet-dw"].geometry().is_depthwise
    assert set(NAMED_CONFIGS) == {"alexnet-conv2", "resnext-g32", "mobilenet-dw", "shufflenet-pw-g8", "dense-3x3"}


def test_parse_config():
    assert parse_config("dense-3x3") is NAMED_CONFIGS["dense-3x3"]
    config = parse_config("2,8,16,10,12,3,2,1,4")
    assert config == LayerConfig("custom-2-8-16-10-12-3-2-1-4", 2, 8, 16, 10, 12, 3, 2, 1, 4)
    assert config.geometry().y_shape == (2, 16, 5, 6)  # (10 + 2 - 3) // 2 + 1 = 5, (12 + 2 - 3) // 2 + 1 = 6


@pytest.mark.parametrize(
    ("text", "match"),
    [("1,2,3", "9 comma-separated"), ("a,8,8,8,8,3,1,1,1", "must contain ints"), ("1,6,6,8,8,3,1,1,4", "groups=4")],
)
def test_parse_config_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        parse_config(text)


def test_roofline_matches_the_geometry():
    geom = TINY.geometry()
    numbers = roofline(geom, 4)
    assert numbers["gflop_forward"] == pytest.approx(geom.flops / 1e9)
    assert numbers["intensity_forward"] == pytest.approx(geom.flops / geom.min_bytes(4))
    both = 3 * geom.flops  # forward + dx + dw
    assert numbers["intensity_forward_backward"] == pytest.approx(both / geom.min_bytes(4, backward=True))


def test_run_benchmark_records(capsys):
    records = run_benchmark([TINY], ["numba", "auto"], peers=(), repeats=2, threads=1, settle_s=0.01)
    assert [(r["pass"], r["contender"]) for r in records] == [
        ("forward", "numba"),
        ("forward", "auto"),
        ("forward+backward", "numba"),
        ("forward+backward", "auto"),
    ]
    for record in records:
        assert record["ms_min"] <= record["ms_median"] <= record["ms_max"]
        assert record["gflops"] > 0 and record["ratio_to_peer"] is None and record["threads"] == 1
        assert record["peak_extra_mib"] > 0  # at least the outputs, which NumPy allocates
    assert records[1]["auto_choice"] == choose_auto(TINY.geometry(), on_gpu=False)
    assert "[bench]" in capsys.readouterr().err  # progress goes to stderr


def test_torch_peer_ratio():
    pytest.importorskip("torch")
    records = run_benchmark([TINY], ["numba"], passes=("forward",), repeats=2, threads=1, settle_s=0)
    peer, ours = records
    assert peer["contender"] == "torch" and peer["ratio_to_peer"] == 1.0 and peer["peak_extra_mib"] is None
    assert ours["ratio_to_peer"] == pytest.approx(ours["ms_median"] / peer["ms_median"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="backends contains 'fast'"):
        run_benchmark([TINY], ["fast"], peers=())
    with pytest.raises(ValueError, match="passes"):
        run_benchmark([TINY], ["numba"], peers=(), passes=("backward",))
    with pytest.raises(ValueError, match="device"):
        run_benchmark([TINY], ["numba"], peers=(), device="tpu")
    with pytest.raises(ValueError, match="settle_s"):
        run_benchmark([TINY], ["numba"], peers=(), settle_s=-1)


def test_unavailable_backend_is_skipped_with_its_reason(monkeypatch):
    from gconv_edu.backends import REGISTRY, Backend

    monkeypatch.setitem(REGISTRY, "ghost", Backend("ghost", ".ghost_backend", "cpu"))
    records = run_benchmark([TINY], ["ghost"], peers=(), passes=("forward",), repeats=1, threads=1, settle_s=0)
    assert "import failed" in records[0]["skipped"]
    assert "skipped: import failed" in bench.format_table(records)


def test_thread_limit_sets_and_restores():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with bench.thread_limit(1) as counts:
        assert numba.get_num_threads() == 1 and counts["numba"] == 1
        assert all(entry.split(" ")[0].endswith(":1") for entry in counts["blas"]), counts["blas"]
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"), bench.thread_limit(0):
        pass


def test_quick_cli_writes_json_and_png(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert bench.main(["--quick", "--threads", "1", "--json", str(out_json), "--plot", str(out_png)]) == 0
    stdout = capsys.readouterr().out
    assert "median ms" in stdout and "auto rule" in stdout and "arithmetic intensity" in stdout
    payload = json.loads(out_json.read_text())
    assert payload["settings"]["threads"]["numba"] == 1
    measured = {(r["config"], r["pass"], r["contender"]) for r in payload["records"] if "skipped" not in r}
    assert ("mobilenet-dw-tiny", "forward+backward", "auto") in measured
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gpu_device_fails_clearly_without_a_gpu(capsys):
    if bench.gpu_unavailable_reason() is None:
        pytest.skip("a GPU is usable here")
    assert bench.main(["--quick", "--device", "gpu", "--no-plot"]) == 2
    assert "no usable GPU" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="no usable GPU"):
        run_benchmark([TINY], ["cupy"], device="gpu")


def test_bad_threads_and_groups_are_usage_errors_not_tracebacks(capsys):
    for argv, text in (
        (["--quick", "--threads", "0"], "--threads"),
        (["--quick", "--config", "1,4,4,8,8,3,1,1,0"], "groups=0"),
    ):
        with pytest.raises(SystemExit) as info:
            bench.main(argv)
        assert info.value.code == 2
        assert text in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 14: peak, winograd, auto, sweep
def test_measure_peak_reports_both_libraries_and_the_better():
    from gconv_edu.bench import peak

    numbers = peak.measure_peak("float32", size=64, repeats=2)
    assert numbers["size"] == 64 and numbers["dtype"] == "float32" and numbers["torch_gflops"] is None
    assert numbers["numpy_gflops"] > 0 and numbers["peak_gflops"] == numbers["numpy_gflops"]
    assert numbers["peak_by"] == "numpy"
    torch = pytest.importorskip("torch")
    both = peak.measure_peak("float64", size=64, repeats=1, torch=torch)
    assert both["torch_gflops"] > 0
    assert both["peak_gflops"] == max(both["numpy_gflops"], both["torch_gflops"])
    assert both["peak_by"] == ("torch" if both["torch_gflops"] > both["numpy_gflops"] else "numpy")
    assert "dgemm 64x64" in peak.describe_peak(both, 1) and "torch" in peak.describe_peak(both, 1)
    for bad in ({"size": 0}, {"size": 2.5}, {"repeats": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            peak.measure_peak("float32", **{"size": 8, "repeats": 1, **bad})


def test_records_carry_the_fraction_of_the_measured_peak():
    records = run_benchmark([TINY], ["numba"], peers=(), passes=("forward",), repeats=1, threads=1, settle_s=0,
                            peak_size=64)  # fmt: skip
    (record,) = records
    assert record["peak_gflops"] > 0 and record["gflops_kind"] == "direct"
    assert record["fraction_of_peak"] == pytest.approx(record["gflops"] / record["peak_gflops"])
    assert "% peak" in bench.format_table(records)
    (unmeasured,) = run_benchmark([TINY], ["numba"], peers=(), passes=("forward",), repeats=1, threads=1, settle_s=0,
                                  peak_size=None)  # fmt: skip
    assert unmeasured["peak_gflops"] is None and unmeasured["fraction_of_peak"] is None


def _fake_winograd(monkeypatch):
    """A stand-in registered as "winograd": numba's numbers, supports() for 3x3 stride-1 layers only."""
    import sys
    import types

    from gconv_edu.backends import REGISTRY, Backend, numba_cpu

    module = types.ModuleType("fake_winograd_backend")
    module.DESCRIPTION = "test stand-in"
    module.availability = lambda: None
    module.forward, module.backward = numba_cpu.forward, numba_cpu.backward

    def supports(geom):
        ok = (geom.kernel_h, geom.kernel_w, geom.stride, geom.dilation) == (3, 3, (1, 1), (1, 1))
        return None if ok else "3x3, stride 1, dilation 1 only"

    module.supports = supports
    monkeypatch.setitem(sys.modules, "fake_winograd_backend", module)
    monkeypatch.setitem(
        REGISTRY, "winograd", Backend("winograd", "fake_winograd_backend", "cpu", supports_attr="supports")
    )


def test_winograd_reports_effective_gflops_and_is_skipped_where_unsupported(monkeypatch):
    _fake_winograd(monkeypatch)
    three, one = QUICK_CONFIGS["dense-3x3-tiny"], QUICK_CONFIGS["shufflenet-pw-g8-tiny"]
    records = run_benchmark([three, one], ["winograd", "numba"], peers=(), passes=("forward",), repeats=1,
                            threads=1, settle_s=0, peak_size=32)  # fmt: skip
    by = {(r["config"], r["contender"]): r for r in records}
    winograd = by[(three.name, "winograd")]
    assert winograd["gflops_kind"] == "effective" and by[(three.name, "numba")]["gflops_kind"] == "direct"
    geom = three.geometry()
    assert winograd["gflops"] == pytest.approx(geom.flops / (winograd["ms_median"] * 1e6))  # direct FLOPs / time
    assert by[(one.name, "winograd")]["skipped"] == "not supported here: 3x3, stride 1, dilation 1 only"
    table = bench.format_table(records)
    assert "effective GFLOP/s (direct FLOPs / time)" in table and "skipped: not supported here" in table


def test_auto_is_compared_with_the_fastest_backend_of_the_run():
    from gconv_edu.bench import measure

    def row(config, contender, ms, **extra):
        return {"config": config, "pass": "forward", "contender": contender, "kind": "backend", "device": "cpu",
                "ms_median": ms, "gflops": 1.0, **extra}  # fmt: skip

    records = [
        row("a", "im2col", 4.0),
        row("a", "numba", 2.0),
        row("a", "auto", 3.0, auto_choice="im2col"),
        {**row("a", "torch", 1.0), "kind": "peer"},  # a peer is not one of our backends
        row("b", "auto", 1.0, auto_choice="numba"),  # nothing beside it
        row("c", "numba", 1.0),
        row("c", "auto", 1.1, auto_choice="numba"),
    ]
    measure.annotate(records, {"peak_gflops": 4.0})
    auto_a, auto_b, auto_c = (r for r in records if r["contender"] == "auto")
    assert (auto_a["fastest_backend"], auto_a["fastest_ms"]) == ("numba", 2.0)
    assert auto_a["auto_vs_fastest"] == pytest.approx(1.5)
    assert auto_b["fastest_backend"] is None and auto_b["auto_vs_fastest"] is None
    assert auto_c["auto_vs_fastest"] == pytest.approx(1.1)
    assert records[0]["fraction_of_peak"] == pytest.approx(0.25)
    summary = bench.auto_summary(records)
    assert "auto -> im2col" in summary and "fastest here: numba" in summary and "auto / fastest = 1.50" in summary
    assert "in 1 of 2 (config, pass) pairs" in summary


def test_sweep_set_covers_the_issue_s_range():
    from gconv_edu.configs import CONFIG_SETS, SWEEP_CONFIGS

    assert len(SWEEP_CONFIGS) >= 12 and not set(SWEEP_CONFIGS) & set(NAMED_CONFIGS)
    geoms = {name: config.geometry() for name, config in SWEEP_CONFIGS.items()}
    assert {g.kernel_h for g in geoms.values()} == {3, 5}
    assert all(16 <= c <= 256 for g in geoms.values() for c in (g.in_channels, g.out_channels))
    assert min(g.height for g in geoms.values()) == 7 and max(g.height for g in geoms.values()) == 112
    groups = {g.groups for g in geoms.values() if not g.is_depthwise}
    assert 1 in groups and len(groups - {1}) >= 3  # dense, grouped in between ...
    assert sum(g.is_depthwise for g in geoms.values()) >= 3  # ... and depthwise
    assert any(g.stride != (1, 1) for g in geoms.values())  # where winograd does not apply
    for name, config in SWEEP_CONFIGS.items():
        assert parse_config(name) is config
        assert config.kernel in (3, 5) and config.padding == config.kernel // 2
    assert CONFIG_SETS["all"] == {**NAMED_CONFIGS, **SWEEP_CONFIGS}


def test_cli_config_sets_and_listing(capsys):
    from gconv_edu.configs import SWEEP_CONFIGS

    assert bench.main(["--list-configs"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in [*SWEEP_CONFIGS, *NAMED_CONFIGS, *QUICK_CONFIGS])
    with pytest.raises(SystemExit) as info:
        bench.main(["--configs", "sweep", "--config", "dense-3x3"])
    assert info.value.code == 2 and "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--configs", "everything"])
    assert "invalid choice" in capsys.readouterr().err
    for bad in ("0", "x"):
        with pytest.raises(SystemExit):
            bench.main(["--quick", "--peak-size", bad])
        assert "--peak-size" in capsys.readouterr().err


def test_cli_prints_peak_and_auto_and_writes_them_to_json(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    argv = ["--config", "dense-3x3-tiny", "--backends", "numba", "auto", "--no-peer", "--passes", "forward",
            "--repeats", "1", "--settle", "0", "--threads", "1", "--peak-size", "64", "--no-plot", "--json",
            str(out_json)]  # fmt: skip
    assert bench.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "machine peak: best sgemm 64x64 @ 64x64, 1 thread(s)" in stdout and "% peak" in stdout
    assert "auto rule (CPU):" in stdout and "auto / fastest =" in stdout
    payload = json.loads(out_json.read_text())
    assert payload["peak"]["size"] == 64 and payload["peak"]["peak_gflops"] > 0
    auto = next(r for r in payload["records"] if r["contender"] == "auto")
    assert auto["fastest_backend"] == "numba" and auto["auto_vs_fastest"] > 0
    assert auto["fraction_of_peak"] == pytest.approx(auto["gflops"] / payload["peak"]["peak_gflops"])
    assert bench.main([*argv, "--no-peak"]) == 0
    assert "machine peak: not measured" in capsys.readouterr().out
    payload = json.loads(out_json.read_text())
    assert payload["peak"] is None and all(r["fraction_of_peak"] is None for r in payload["records"])


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    import io

    from gconv_edu.bench import measure

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    contenders = [measure.Contender("numba", "backend", "cpu", lambda: None)]
    log, terminal = io.StringIO(), Terminal()
    measure._time_rounds("cfg forward", contenders, 3, 0.0, log)
    assert "[bench] cfg forward: round 3/3" in log.getvalue()
    first, times = measure._time_rounds("cfg forward", contenders, 3, 0.0, terminal)
    assert len(times["numba"]) == 3 and "numba" in first
    shown = terminal.getvalue()
    assert "[bench] cfg forward:" in shown and "0/3" in shown and "round/s" in shown  # tqdm's bar over the rounds
    assert "round 1/3" not in shown  # ... and not the log lines
    assert measure._progress_bar("x", 1, None) is None and measure._progress_bar("x", 1, log) is None


@pytest.mark.parametrize("chosen", ["sweep", "all", "named", "quick"])
def test_cli_configs_option_selects_the_set(monkeypatch, capsys, chosen):
    """--configs SET times exactly that set, in order (measuring stubbed out: only the selection is under test)."""
    from gconv_edu.bench import measure
    from gconv_edu.configs import CONFIG_SETS

    seen = []
    monkeypatch.setattr(measure, "measure_config", lambda config, *args: seen.append(config.name) or [])
    assert bench.main(["--configs", chosen, "--no-peer", "--no-peak", "--no-plot", "--repeats", "1"]) == 0
    assert seen == list(CONFIG_SETS[chosen])
    assert "machine peak: not measured" in capsys.readouterr().out
