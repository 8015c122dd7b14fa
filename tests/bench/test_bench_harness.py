"""bench/run.py end to end on the smallest model, and the bar checker on crafted results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import check_bars  # noqa: E402


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.json"
    ran = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--only", "mlp", "--batch", "2", "--threads", "1",
         "--engines", "onnxruntime,tract", "--budget", "0.2", "--rounds", "2", "--no-gemm",
         "--work", str(work), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    return json.loads(out.read_text())


def test_engines_verified_timed_and_measured(quick_results):
    (row,) = quick_results["rows"]
    assert (row["model"], row["batch"], row["threads"]) == ("mlp", 2, 1)
    for engine in ("onnxruntime", "tract"):
        entry = row["engines"][engine]
        assert entry["verified"] is True, entry
        assert entry["median_us"] > 0 and entry["p90_us"] >= entry["median_us"]
        assert entry["throughput_per_s"] == pytest.approx(2e6 / entry["median_us"], rel=1e-2)
        # Own address space only: a worker with numpy and one engine, not the driver's PyTorch.
        assert 10 < entry["peak_rss_mb"] < 400
    assert row["ratios"]["tract/onnxruntime"] == pytest.approx(
        row["engines"]["tract"]["median_us"] / row["engines"]["onnxruntime"]["median_us"], rel=1e-2)


def test_markdown_written_next_to_json(quick_results, tmp_path):
    from irc.benchmark import report

    text = report.markdown(quick_results)
    assert "| mlp | 2 | 1 |" in text


def _row(model, batch, threads, irc, ort, tract, rss):
    ratios = {"irc_measured_via": "irc_native", "irc/onnxruntime": irc / ort, "irc/tract": irc / tract,
              "rss irc/onnxruntime": rss}
    return {"model": model, "batch": batch, "threads": threads, "ratios": ratios}


def test_bars_pass_fail_and_pending():
    results = {"rows": [_row("mlp", 1, 1, 70.0, 100.0, 200.0, 0.5), _row("mnist_cnn", 1, 1, 120.0, 100.0, 1000.0, 2.0)],
               "gemm": None}
    status = {msg.split(" (")[0] if st == "PENDING" else msg.rsplit(": ", 1)[0]: st
              for st, msg in check_bars.check(results)}
    assert status["mlp b1: irc <= 0.8x onnxruntime"] == "PASS"  # 0.70
    assert status["mnist_cnn b1 t1: irc <= 1.0x onnxruntime"] == "FAIL"  # 1.20
    assert status["mnist_cnn b1 t1: irc <= 0.5x tract"] == "PASS"  # 0.12
    assert status["mnist_cnn b1 t1: irc peak RSS <= onnxruntime's"] == "FAIL"  # 2.0
    assert status["mlp b1 t1: irc <= 0.5x tract"] == "PASS"  # 0.35
    assert status["resnet18 b8 t2: irc <= 1.1x onnxruntime"] == "PENDING"
    assert status["GEMM micro-benchmark not in this run"] == "PENDING"
    assert check_bars.main([]) in (0, 1, 2)  # the CLI runs on whatever results exist


def test_timing_advisory_gates_only_on_correctness(tmp_path):
    slow = _row("mnist_cnn", 1, 1, 120.0, 100.0, 1000.0, 2.0)  # fails latency and RSS bars
    slow["engines"] = {"onnxruntime": {"verified": True}, "irc_python": {"verified": True}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": [slow], "gemm": None}))
    assert check_bars.main([str(path)]) == 1
    assert check_bars.main([str(path), "--timing-advisory"]) == 0
    slow["engines"]["irc_python"]["verified"] = False
    path.write_text(json.dumps({"rows": [slow], "gemm": None}))
    assert check_bars.main([str(path), "--timing-advisory"]) == 1


def test_native_loop_timed_without_rss_poller(monkeypatch, tmp_path):
    """The timed native processes run without the driver's 2 ms RSS poller (it takes ~5% of
    a core from a 2-thread loop); one untimed polled process after the rounds gives the peak."""
    from irc.benchmark import harness, irc_engine

    calls = []

    def fake_bench_native(build, names, input_dir, runs, threads, measure_rss=True):
        calls.append(measure_rss)
        return 10.0, 12.0, (42.0 if measure_rss else None)

    monkeypatch.setattr(irc_engine, "bench_native", fake_bench_native)
    settings = harness.Settings(work=tmp_path, batches=[1], threads=[2], irc=False, runs=6, rounds=3, settle=0.0)
    native = harness.EngineResult(verified=True)
    harness.Bench(settings).time_rounds({}, {}, native, None, [], tmp_path, harness.Config("m", 1, 2))
    assert calls == [False, False, False, True]
    assert native.round_stats == [(10.0, 12.0)] * 3
    assert native.rss_mb == 42.0
