"""`make bench-optimize`: irc level 2 vs onnxsim vs onnxslim on the same models.

Models: the 9 light model-zoo graphs in the `onnx` package, 5 torchvision-style CNNs
and 2 transformer encoders exported here with torch (dynamo exporter). For every
model and tool: node count (subgraphs included), initializer bytes (Constant nodes
included), wall time, and whether onnxruntime gives the original's outputs.
Then a >2 GB model (external data) is optimized by `irc optimize` in a child
process whose peak RSS is measured.

Writes bench/optimize/results.json and bench/optimize/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
TOOLS = ("irc", "onnxsim", "onnxslim")


def count_nodes(graph: onnx.GraphProto) -> int:
    n = len(graph.node)
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                n += count_nodes(a.g)
            elif a.type == AttributeProto.GRAPHS:
                n += sum(count_nodes(g) for g in a.graphs)
    return n


def tensor_bytes(t: onnx.TensorProto) -> int:
    return int(numpy_helper.to_array(t).nbytes)


def weight_bytes(graph: onnx.GraphProto) -> int:
    total = sum(tensor_bytes(t) for t in graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                total += tensor_bytes(a.t)
            elif a.type == AttributeProto.GRAPH:
                total += weight_bytes(a.g)
    return total


def run_irc(model: onnx.ModelProto) -> onnx.ModelProto:
    from irc.ir import from_onnx, to_onnx
    from irc.passes import optimize

    graph = from_onnx(model)
    optimize(graph, 2)
    return to_onnx(graph)


def run_onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    out, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return out


def run_onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):
        return onnxslim.slim(model)


RUNNERS = {"irc": run_irc, "onnxsim": run_onnxsim, "onnxslim": run_onnxslim}


def outputs_match(original: onnx.ModelProto, optimized: onnx.ModelProto) -> bool:
    from irc import oracle
    from irc.ir import from_onnx

    feeds = oracle.random_inputs(from_onnx(original), seed=0)
    exp = oracle.run(original, feeds, optimize=False)
    got = oracle.run(optimized, feeds, optimize=False)
    names = [o.name for o in original.graph.output]
    return all(oracle.compare_arrays(n, exp[n], got[n]).ok for n in names if n in got) and \
        all(n in got for n in names)


def bench_model(name: str, path: Path, repeats: int) -> dict:
    row = {"model": name}
    original = onnx.load(path)
    row["original"] = {"nodes": count_nodes(original.graph), "bytes": weight_bytes(original.graph)}
    for tool in TOOLS:
        best, out, error = float("inf"), None, ""
        for _ in range(repeats):
            model = onnx.load(path)
            t0 = time.perf_counter()
            try:
                out = RUNNERS[tool](model)
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                break
            best = min(best, time.perf_counter() - t0)
        if error:
            row[tool] = {"error": error}
            continue
        try:
            same = outputs_match(original, out)
        except Exception as exc:
            same = f"cannot run: {str(exc)[:80]}"
        row[tool] = {"nodes": count_nodes(out.graph), "bytes": weight_bytes(out.graph),
                     "seconds": round(best, 4), "outputs_match": same}
    return row


def big_model_rss(workdir: Path, gib: float) -> dict:
    """Write a >2 GB MLP with external data, run `irc optimize` on it, measure peak RSS."""
    from onnx import TensorProto, helper

    d, layers = 4096, max(1, int(gib * (1 << 30) / (4096 * 4096 * 4)) + 1)
    src = workdir / "big.onnx"
    data_name = "big.onnx.data"
    inits, nodes, x = [], [], "x"
    with open(workdir / data_name, "wb") as data:
        for i in range(layers):
            w = np.full((d, d), 1e-4 * (i + 1), np.float32)
            w[0, : i + 1] = 1.0  # every layer distinct
            t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[d, d],
                            data_location=TensorProto.EXTERNAL)
            for k, v in (("location", data_name), ("offset", str(data.tell())), ("length", str(w.nbytes))):
                t.external_data.add(key=k, value=v)
            data.write(w.tobytes())
            del w
            inits += [t, numpy_helper.from_array(np.full(d, 0.01 * i, np.float32), f"b{i}")]
            nodes += [helper.make_node("Identity", [x], [f"id{i}"]),
                      helper.make_node("MatMul", [f"id{i}", f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                      helper.make_node("Relu", [f"a{i}"], [f"r{i}"])]
            x = f"r{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, src)
    size = sum(p.stat().st_size for p in workdir.iterdir())
    out = workdir / "big_opt.onnx"
    cmd = [sys.executable, str(HERE / "peak_rss.py"), "optimize", str(src), "-o", str(out), "--no-check", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    stdout, stderr = proc.stdout, proc.stderr
    marks = [line for line in stderr.splitlines() if line.startswith("peak_rss_bytes=")]
    peak = int(marks[-1].split("=")[1]) if marks else -1
    stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith("peak_rss_bytes="))
    report = json.loads(stdout) if stdout.strip().startswith("{") else {"error": stderr[-300:]}
    return {"model_bytes": size, "layers": layers, "peak_rss_bytes": peak,
            "rss_over_size": round(peak / size, 3), "seconds": round(seconds, 1),
            "nodes": [report.get("nodes_before"), report.get("nodes_after")],
            "bar_met": peak < 1.5 * size, "stderr": stderr.strip().splitlines()[-1:] if stderr else []}


def markdown(rows: list[dict], big: dict | None) -> str:
    lines = ["# irc optimize (level 2) vs onnxsim vs onnxslim", "",
             "Nodes (subgraphs included), initializer + Constant bytes, best wall time of the repeats. "
             "`ok` = onnxruntime gives the original's outputs on seeded inputs.", "",
             "| model | original nodes | irc nodes | onnxsim nodes | onnxslim nodes | irc ≤ best | "
             "irc MB | onnxsim MB | onnxslim MB | irc s | onnxsim s | onnxslim s | irc/onnxsim time | ok (irc/sim/slim) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def get(tool, key, fmt="{}", r=r):
            v = r[tool].get(key)
            return fmt.format(v) if v is not None else "err"
        others = [r[t]["nodes"] for t in ("onnxsim", "onnxslim") if "nodes" in r[t]]
        best = min(others) if others else None
        irc_nodes = r["irc"].get("nodes")
        at_or_below = "—" if best is None or irc_nodes is None else ("yes" if irc_nodes <= best else "**no**")
        ratio = (f"{r['irc']['seconds'] / r['onnxsim']['seconds']:.2f}"
                 if "seconds" in r["irc"] and "seconds" in r["onnxsim"] else "—")
        oks = "/".join("ok" if r[t].get("outputs_match") is True else ("err" if "error" in r[t] else "DIFF")
                       for t in TOOLS)
        lines.append(
            f"| {r['model']} | {r['original']['nodes']} | {get('irc', 'nodes')} | {get('onnxsim', 'nodes')} | "
            f"{get('onnxslim', 'nodes')} | {at_or_below} | "
            + " | ".join(f"{r[t]['bytes'] / 1e6:.2f}" if "bytes" in r[t] else "err" for t in TOOLS)
            + " | " + " | ".join(get(t, "seconds", "{:.3f}") for t in TOOLS) + f" | {ratio} | {oks} |")
    errors = [(r["model"], t, r[t]["error"]) for r in rows for t in TOOLS if "error" in r[t]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {m} / {t}: {e}" for m, t, e in errors]
    if big:
        lines += ["", "## A model over 2 GB (external data), `irc optimize --no-check`", "",
                  f"- model size: {big['model_bytes'] / 2**30:.2f} GiB ({big['layers']} layers of 4096x4096 float32)",
                  f"- peak RSS: {big['peak_rss_bytes'] / 2**30:.2f} GiB = {big['rss_over_size']}x the model "
                  f"(bar: < 1.5x) -> {'met' if big['bar_met'] else 'NOT met'}",
                  f"- nodes: {big['nodes'][0]} -> {big['nodes'][1]}, wall time {big['seconds']} s"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-big", action="store_true", help="skip the >2 GB RSS measurement")
    parser.add_argument("--big-gib", type=float, default=2.1)
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    only = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="irc-bench-") as tmp:
        tmp = Path(tmp)
        paths = {p.stem.removeprefix("light_"): p for p in sorted(LIGHT.glob("light_*.onnx"))}
        from models import MODELS, export
        for name in MODELS:
            if only and name not in only:
                continue
            export(name, str(tmp / f"{name}.onnx"))
            paths[name] = tmp / f"{name}.onnx"
        for name, path in paths.items():
            if only and name not in only:
                continue
            row = bench_model(name, path, args.repeats)
            rows.append(row)
            print(json.dumps(row), flush=True)
        big = None
        if not args.skip_big:
            bigdir = tmp / "big"
            bigdir.mkdir()
            big = big_model_rss(bigdir, args.big_gib)
            print(json.dumps(big), flush=True)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps({"models": rows, "big_model": big}, indent=2))
    (out / "results.md").write_text(markdown(rows, big))
    print(f"wrote {out / 'results.md'} and results.json")


if __name__ == "__main__":
    main()
