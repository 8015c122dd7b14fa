"""Writing the crate: Cargo.toml, src/lib.rs, src/main.rs, src/runtime/, weights.bin, README.md."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from ... import __version__
from ...errors import IrcError
from ...ir import Graph
from .emitter import MODULE_PRELUDE, ModelSource, emit_model, write_weights
from .ops.base import RUST_TYPES
from .prepare import prepare
from .sanitize import doc, ident, type_name


@dataclass
class EmitOptions:
    """How to emit: crate/struct name, weights embedded or in a file, batch size."""

    name: str | None = None
    weights: str = "file"  # "file" or "embed"
    batch: int | None = None  # None keeps a dynamic batch
    level: int = 3  # irc-domain fusions: the backend runs them as single kernels
    fast_build: bool = False
    cpu: str = "portable"  # "portable" (any x86-64/aarch64, kernels picked at run time) or "native"


# Compiling for the build machine's CPU lets LLVM vectorize the whole runtime with its widest
# instructions, not just the GEMM kernels that detect them at run time; the binary then needs
# that CPU, so it is opt-in.
NATIVE_CARGO_CONFIG = """# Written by `irc emit --cpu native`: this crate is compiled for the CPU it is built on.
# Delete this file to build a binary that runs on any CPU of the target architecture.
[build]
rustflags = ["-C", "target-cpu=native"]
"""
CPUS = ("portable", "native")


def runtime_sources() -> dict[str, str]:
    """The runtime's Rust files, by file name."""
    pkg = resources.files(__package__).joinpath("runtime")
    return {p.name: p.read_text() for p in pkg.iterdir() if p.name.endswith(".rs")}


def _templates() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files(__package__).joinpath("templates")))
    return jinja2.Environment(loader=loader, keep_trailing_newline=True, autoescape=False,
                              undefined=jinja2.StrictUndefined)


def crate_name_for(graph: Graph, name: str | None) -> str:
    return ident(name or graph.name or "model", "model").strip("_") or "model"


def copy_runtime(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for fname, text in runtime_sources().items():
        (dest / fname).write_text(text)


def _io_docs(graph: Graph, src: ModelSource) -> tuple[list[dict], list[dict]]:
    def shape(v):
        return "any" if v.shape is None else "[" + ", ".join(
            str(d) if isinstance(d, int) else doc(str(d or "?")) for d in v.shape) + "]"
    by_name = {v.name: v for v in graph.values.values()}
    inputs = [dict(ident=ident(n, "input"), onnx="`" + doc(n) + "`", cli=doc(n).replace("'", ""),
                   rtype=RUST_TYPES.get(by_name[n].dtype, "?"), shape=shape(by_name[n]))
              for n in src.input_names]
    outputs = [dict(onnx="`" + doc(n) + "`", file=f, rtype=RUST_TYPES.get(by_name[n].dtype, "?"),
                    shape=shape(by_name[n]))
               for n, f in zip(src.output_names, src.output_files, strict=True)]
    return inputs, outputs


def render_crate(graph: Graph, src: ModelSource, crate: str, opts: EmitOptions) -> dict[str, str | bytes]:
    """Every file of the crate, by relative path."""
    env = _templates()
    embed = opts.weights == "embed"
    common = dict(crate_name=crate, crate_ident=crate.replace("-", "_"), struct=src.struct,
                  model_doc=doc(graph.name), version=__version__, embed=embed)
    inputs, outputs = _io_docs(graph, src)
    files: dict[str, str | bytes] = {
        "Cargo.toml": env.get_template("Cargo.toml.j2").render(fast_build=opts.fast_build, **common),
        "src/lib.rs": env.get_template("lib.rs.j2").render(prelude=MODULE_PRELUDE, body=src.body, **common),
        "src/main.rs": env.get_template("main.rs.j2").render(**common),
        "README.md": env.get_template("README.md.j2").render(inputs=inputs, outputs=outputs, **common),
        "weights.bin": write_weights(src.weights),
    }
    for fname, text in runtime_sources().items():
        files[f"src/runtime/{fname}"] = text
    if opts.cpu == "native":
        files[".cargo/config.toml"] = NATIVE_CARGO_CONFIG
    return files


def emit_crate(graph: Graph, out: Path, opts: EmitOptions | None = None, force: bool = False) -> ModelSource:
    """Prepare, emit and write a crate to ``out`` (atomically: a temp dir renamed into place)."""
    opts = opts or EmitOptions()
    if opts.cpu not in CPUS:
        raise IrcError(f"--cpu: expected one of {', '.join(CPUS)}, got {opts.cpu!r}")
    out = Path(out)
    if out.exists() and not force:
        raise IrcError(f"{out}: already exists (use --force to overwrite)")
    prepared = prepare(graph, batch=opts.batch, level=opts.level)
    crate = crate_name_for(graph, opts.name)
    src = emit_model(prepared, type_name(opts.name or graph.name or "model"))
    files = render_crate(prepared, src, crate, opts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".irc-emit-", dir=out.parent))
    try:
        for rel, content in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else os.remove(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return src
