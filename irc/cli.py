"""The `irc` command line. Thin: parse, call the library, print.

Heavy modules (onnx, onnxruntime, TensorFlow, PyTorch) are imported inside the
commands so that `irc --help` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .errors import IrcError

app = typer.Typer(
    name="irc",
    help="Compile trained neural networks (TensorFlow, PyTorch, ONNX) into standalone Rust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}

Force = Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    _state["debug"] = debug


def check_writable(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing output unless --force."""
    if out.exists() and not force:
        raise IrcError(f"{out}: already exists (use --force to overwrite)")


@app.command("import")
def import_(
    src: Annotated[str, typer.Argument(
        help="Model to import: .onnx, a SavedModel directory, .keras, .h5, .tflite, .pt2, or a "
             "Python spec pkg.module:attr naming an nn.Module, a Keras model, a tf.function or a "
             "zero-argument factory returning one.")],
    out: Annotated[Path, typer.Option("-o", "--output", help="Where to write the ONNX model.")],
    framework: Annotated[str | None, typer.Option(
        "--framework", help="onnx, tensorflow (tf, keras, tflite) or pytorch (torch); "
                            "default: detected from SRC.")] = None,
    signature: Annotated[str, typer.Option(
        "--signature", help="SavedModel signature to convert.")] = "serving_default",
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", metavar="NAME:D0,D1,...",
        help="Shape of input NAME, repeatable; '?' for any size, an ':int64' suffix sets the "
             "dtype (e.g. x:2,3,224,224).")] = None,
    dynamic_batch: Annotated[bool, typer.Option(
        "--dynamic-batch", help="Make the first axis of every input a symbolic batch.")] = False,
    opset: Annotated[int | None, typer.Option(
        "--opset", help="ONNX opset to produce: default 18 for TensorFlow and PyTorch; an .onnx "
                        "file keeps its own opset unless given.")] = None,
    no_check: Annotated[bool, typer.Option(
        "--no-check", help="Skip comparing the source framework with onnxruntime.")] = False,
    atol: Annotated[float | None, typer.Option("--atol", help="Absolute tolerance of the check.")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", help="Relative tolerance of the check.")] = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Import a model from any framework, check the conversion, and write it as ONNX."""
    from .frontends import ImportOptions, import_model, raise_if_failed
    from .frontends.report import summary, text_lines
    from .ir import save

    check_writable(out, force)
    options = ImportOptions(framework=framework, signature=signature, input_shapes=input_shape,
                            dynamic_batch=dynamic_batch, opset=opset, check=not no_check,
                            atol=atol, rtol=rtol)
    result = import_model(src, options)
    if not as_json:
        typer.echo("\n".join(text_lines(result)), err=True)
    if result.ok:
        save(result.graph, out)
    if as_json:
        typer.echo(json.dumps(summary(result, out, result.ok), indent=2))
    raise_if_failed(result)
    typer.echo(f"wrote {out} ({result.graph.num_ops} nodes)", err=True)


@app.command()
def optimize(
    src: Annotated[Path, typer.Argument(help="The .onnx model to optimize.")],
    out: Annotated[Path, typer.Option("-o", "--output", help="Where to write the optimized model.")],
    level: Annotated[int, typer.Option("--level", help="0 none, 1 cleanup, 2 ONNX fusions, 3 irc-domain fusions.")] = 2,
    passes: Annotated[str | None, typer.Option("--passes", help="Run exactly these passes (comma-separated).")] = None,
    skip: Annotated[str | None, typer.Option("--skip", help="Passes to leave out (comma-separated).")] = None,
    report: Annotated[bool, typer.Option("--report", help="Print a per-pass table on stderr.")] = False,
    as_json: Json = False,
    force: Force = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare before/after in onnxruntime.")] = True,
    bisect: Annotated[bool, typer.Option("--bisect", help="On a mismatch, name the first pass and node that diverge.")] = False,
    fold_limit: Annotated[str | None, typer.Option("--fold-limit", help="Largest tensor constant folding may create (e.g. 256M).")] = None,
) -> None:
    """Fold, prune and fuse a model; every rewrite checked against onnxruntime."""
    from .passes.command import render_report, run_optimize

    check_writable(out, force)
    result, checked = run_optimize(src, out, level=level, passes=passes, skip=skip, check=check,
                                   bisect=bisect, fold_limit=fold_limit)
    if report:
        render_report(result)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    note = "; not checked" if checked is None else (
        f"; check skipped: {checked['skipped']}" if checked.get("skipped") else "; checked")
    typer.echo(f"wrote {out} ({result.nodes_before} -> {result.nodes_after} nodes{note})", err=True)


@app.command()
def inspect(
    model: Annotated[Path, typer.Argument(help="An .onnx file.")],
    as_json: Json = False,
) -> None:
    """Summarize a model: inputs, outputs, opsets, op histogram, parameters."""
    from .inspect import render_table, summarize

    summary = summarize(model)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        render_table(summary)


def _parse_batch(batch: str | None) -> int | None:
    if batch is None or batch == "dynamic":
        return None
    if not batch.isdigit() or int(batch) < 1:
        raise IrcError(f"--batch: expected a positive integer or 'dynamic', got {batch!r}")
    return int(batch)


def _report_unsupported(exc, as_json: bool) -> None:
    """Print every unsupported node (table on stderr, or JSON on stdout) and exit 2."""
    if as_json:
        typer.echo(json.dumps({"ok": False, "unsupported": [i.as_dict() for i in exc.items]}, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(exc.items)} unsupported node(s)")
        for col in ("node", "op", "opset", "dtypes", "reason"):
            table.add_column(col)
        for i in exc.items:
            op_name = f"{i.domain}.{i.op_type}" if i.domain else i.op_type
            table.add_row(i.node, op_name, str(i.opset), i.dtypes, i.reason)
        Console(stderr=True).print(table)
    raise typer.Exit(2)


@app.command()
def emit(
    model: Annotated[Path, typer.Argument(help="The .onnx model to compile.")],
    out: Annotated[Path, typer.Option("-o", "--output", help="Directory of the crate to write.")],
    target: Annotated[str, typer.Option("--target", help="Code generation target.")] = "rust",
    name: Annotated[str | None, typer.Option("--name", help="Crate and struct name.")] = None,
    weights: Annotated[str, typer.Option("--weights", help="embed (include_bytes!) or file (weights.bin).")] = "file",
    batch: Annotated[str | None, typer.Option("--batch", help="Fix the batch size, or 'dynamic'.")] = None,
    level: Annotated[int, typer.Option("--level", help="Optimization level before emission (0-3; 3 fuses into irc ops the backend runs natively).")] = 3,
    python: Annotated[bool, typer.Option("--python", help="Also write a PyO3 binding (crate/python, built with maturin).")] = False,
    cpu: Annotated[str, typer.Option("--cpu", help="portable (runs on any CPU of the target) or native (this machine's CPU only, faster).")] = "portable",
    as_json: Json = False,
    force: Force = False,
) -> None:
    """Compile a model into a standalone Rust crate (ndarray and rayon only)."""
    from .backends.rust import EmitOptions, emit_crate
    from .backends.rust.emitter import EmitError
    from .ir.onnx_io import load

    if target != "rust":
        raise IrcError(f"--target: unknown target {target!r} (available: rust)")
    if weights not in ("embed", "file"):
        raise IrcError(f"--weights: expected 'embed' or 'file', got {weights!r}")
    check_writable(out, force)
    graph = load(model)
    opts = EmitOptions(name=name, weights=weights, batch=_parse_batch(batch), level=level, cpu=cpu)
    try:
        src = emit_crate(graph, out, opts, force=force)
    except EmitError as exc:
        _report_unsupported(exc, as_json)
    if python:
        from .backends.rust.crate import crate_name_for
        from .backends.rust.python_binding import write_python_binding

        write_python_binding(out, graph, src, crate_name_for(graph, name), embed=weights == "embed")
    if as_json:
        typer.echo(json.dumps({"ok": True, "crate": str(out), "struct": src.struct,
                               "inputs": src.input_names, "outputs": src.output_names}, indent=2))
    typer.echo(f"wrote {out} (struct {src.struct}, {len(src.weights)} weight tensors)", err=True)


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="The .onnx model to check.")],
    target: Annotated[str, typer.Option("--target", help="Code generation target.")] = "rust",
    inputs: Annotated[str | None, typer.Option("--inputs", help="Input .npy files, comma-separated, in model order.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Batch size of the random inputs.")] = None,
    atol: Annotated[float | None, typer.Option("--atol", help="Absolute tolerance (default per dtype).")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", help="Relative tolerance (default per dtype).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--output", help="Keep the crate in this directory.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    bisect: Annotated[bool, typer.Option("--bisect", help="On a mismatch, name the first divergent node.")] = False,
    as_json: Json = False,
    force: Force = False,
) -> None:
    """Emit, build and run the crate; compare every output with onnxruntime (exit 1 on mismatch)."""
    from .backends.rust.emitter import EmitError
    from .ir.onnx_io import load
    from .verify import verify as run_verify

    if target != "rust":
        raise IrcError(f"--target: unknown target {target!r} (available: rust)")
    if out is not None:
        check_writable(out, force)
    graph = load(model)
    paths = [Path(p) for p in inputs.split(",")] if inputs else None
    try:
        result = run_verify(graph, out=out, inputs=paths, batch=batch, atol=atol, rtol=rtol,
                            seed=seed, bisect=bisect, force=force)
    except EmitError as exc:
        _report_unsupported(exc, as_json)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        for d in result.diffs:
            status = "ok" if d.ok else "MISMATCH"
            typer.echo(f"{d.name}: max_abs={d.max_abs:.3g} max_rel={d.max_rel:.3g} ulp={d.max_ulp:.0f} "
                       f"{status}{' ' + d.detail if d.detail else ''}")
        if result.first_divergence:
            typer.echo(f"first divergent node: {result.first_divergence}")
        typer.echo(f"verify: {'ok' if result.ok else 'mismatch'} (build {result.build_seconds:.1f}s)")
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="The .onnx model to time.")],
    batch: Annotated[str | None, typer.Option(
        "--batch", help="Batch sizes, comma-separated (default 1,8; a model with a fixed batch: that one).")] = None,
    threads: Annotated[str, typer.Option(
        "--threads", help="Thread counts, comma-separated (irc's and onnxruntime's).")] = "1",
    against: Annotated[str | None, typer.Option(
        "--against", help="Engines to time irc against: onnxruntime,tract (default: both, tract if "
                          "installed). onnxruntime verifies the outputs in any case.")] = None,
    runs: Annotated[int | None, typer.Option(
        "--runs", help="Timed runs per engine and configuration (default: what --budget allows).")] = None,
    budget: Annotated[float, typer.Option(
        "--budget", help="Seconds of timed runs per engine and configuration.")] = 2.0,
    work: Annotated[Path | None, typer.Option(
        "--work", help="Keep the crate, inputs and outputs here; a rerun reuses the build "
                       "(default: a temporary directory).")] = None,
    no_python: Annotated[bool, typer.Option(
        "--no-python", help="Skip the Python binding: time the crate's native loop only.")] = False,
    as_json: Json = False,
) -> None:
    """Time the compiled crate against onnxruntime and tract, outputs verified first (exit 1 if not)."""
    from .benchmark.command import BenchRequest, render, run_bench

    result = run_bench(BenchRequest(model, batch, threads, against, runs, budget, work, not no_python))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        render(result)
    raise typer.Exit(0 if result["verified"] else 1)


def main() -> None:
    """Entry point: user errors print one line and exit 2; --debug shows tracebacks."""
    import click

    try:
        rv = app(standalone_mode=False)
    except IrcError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _state["debug"]:
            raise
        print(f"irc: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
