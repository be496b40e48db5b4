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
