"""`irc emit --python`: a PyO3 extension over the emitted crate, built with maturin.

The binding lives in ``<crate>/python`` as its own cargo crate that depends on
the model crate by path, so the model crate itself keeps ndarray as its only
dependency. Its `forward` is typed per model (one numpy array per input, of
the declared dtype), which keeps a call's fixed cost to a few microseconds.
"""

from __future__ import annotations

import re
import subprocess
from importlib import resources
from pathlib import Path

import jinja2

from ...errors import IrcError
from ...ir import Graph
from .emitter import ModelSource
from .ops.base import RUST_TYPES
from .sanitize import doc

BINDING_DIR = "python"
RELEASE_GIL_ABOVE = 1_000_000
"""Parameters above which `forward` releases the GIL: below, the model runs in
less time than releasing and re-taking the GIL costs (about 3 us, measured)."""


def _template(name: str) -> jinja2.Template:
    folder = resources.files(__package__).joinpath("templates", "python")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), keep_trailing_newline=True,
                             autoescape=False, undefined=jinja2.StrictUndefined)
    return env.get_template(name)


def _rust_type(graph: Graph, name: str) -> str:
    value = graph.values.get(name)
    rtype = RUST_TYPES.get(value.dtype) if value is not None else None
    if rtype is None:
        raise IrcError(f"--python: {name!r} has no element type the binding can pass as numpy")
    return rtype


def write_python_binding(crate_dir: Path, graph: Graph, src: ModelSource, crate_name: str,
                         embed: bool) -> Path:
    """Write ``crate_dir/python`` (Cargo.toml, pyproject.toml, src/lib.rs); returns that folder."""
    module = crate_name.replace("-", "_")
    # Parameter names are positional-only in Python and never come from the model.
    inputs = [{"param": f"input_{k}", "rtype": _rust_type(graph, n)} for k, n in enumerate(src.input_names)]
    outputs = [{"rtype": _rust_type(graph, n)} for n in src.output_names]
    params = sum(w.array.size for w in src.weights)
    manifest = (Path(crate_dir) / "Cargo.toml").read_text()
    ndarray_version = re.search(r'^ndarray = "([^"]+)"', manifest, re.M).group(1)
    common = dict(crate_name=crate_name, module=module, struct=src.struct, model_doc=doc(graph.name),
                  embed=embed, inputs=inputs, outputs=outputs, release_gil=params > RELEASE_GIL_ABOVE,
                  ndarray_version=ndarray_version)
    root = Path(crate_dir) / BINDING_DIR
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(_template("Cargo.toml.j2").render(**common))
    (root / "pyproject.toml").write_text(_template("pyproject.toml.j2").render(**common))
    (root / "src" / "lib.rs").write_text(_template("lib.rs.j2").render(**common))
    return root


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise IrcError(f"{' '.join(cmd[:2])} failed in {cwd}:\n{tail}")
    return proc.stdout


def build_python_binding(crate_dir: Path, wheel_dir: Path) -> Path:
    """Build the binding's wheel with maturin (release); returns the wheel's path."""
    binding = Path(crate_dir) / BINDING_DIR
    if not (binding / "Cargo.toml").exists():
        raise IrcError(f"{crate_dir}: no Python binding (emit with --python)")
    wheel_dir = Path(wheel_dir).resolve()
    wheel_dir.mkdir(parents=True, exist_ok=True)
    _run(["maturin", "build", "--release", "--quiet", "--out", str(wheel_dir)], binding)
    built = sorted(wheel_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if not built:
        raise IrcError(f"maturin wrote no wheel into {wheel_dir}")
    return built[-1]
