"""The pass contract and the pass manager.

A pass is a function ``run(graph, ctx) -> PassResult``: it rewrites one graph (not
its subgraphs: the manager recurses) through the IR API and says whether it
changed anything. The manager runs the passes of a level in order, repeats the
pipeline until nothing changes (a fixed point), and records per pass the node
count, parameters, bytes and time before and after.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from onnx import TensorProto

from ..errors import IrcError
from ..ir import Graph
from ..ir.tensor import elem_size_bits

DEFAULT_FOLD_LIMIT = 256 << 20
"""No folded tensor may be larger than this many bytes."""
DEFAULT_FOLD_TOTAL = 2 << 30
"""Constant folding adds at most this many bytes of new constants in total."""
MAX_ROUNDS = 12


@dataclass
class PassResult:
    """What a pass did: ``changed`` drives the fixed point, ``notes`` go to the report."""

    changed: bool = False
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.changed = True
        if len(self.notes) < 200:
            self.notes.append(text)


@dataclass
class Context:
    """Settings and state shared by the passes of one optimize() call."""

    level: int = 2
    fold_limit: int = DEFAULT_FOLD_LIMIT
    fold_total: int = DEFAULT_FOLD_TOTAL
    folded_bytes: int = 0
    root: Graph | None = None
    memo: dict = field(default_factory=dict)  # per-call state passes keep between runs

    def opset(self, domain: str = "") -> int:
        info = self.root.model if self.root is not None else None
        if info is None:
            return 18
        return info.opset_imports.get(domain, info.opset_imports.get("ai.onnx", 18))


PassFn = Callable[[Graph, Context], PassResult]


@dataclass(frozen=True)
class PassSpec:
    name: str
    level: int
    run: PassFn
    doc: str


REGISTRY: dict[str, PassSpec] = {}


def register(name: str, level: int, doc: str) -> Callable[[PassFn], PassFn]:
    """Decorator: make a pass function available by ``name`` from ``level`` up."""

    def wrap(fn: PassFn) -> PassFn:
        REGISTRY[name] = PassSpec(name, level, fn, doc)
        return fn

    return wrap


@dataclass
class PassStats:
    """One pass over all its runs: values before its first run, after its last run,
    and the sum of its own changes (``*_delta``)."""

    name: str
    runs: int = 0
    changes: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    params_before: int = 0
    params_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    nodes_delta: int = 0
    params_delta: int = 0
    bytes_delta: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The outcome of optimize(): totals and per-pass statistics."""

    level: int
    passes: list[str]
    nodes_before: int
    nodes_after: int = 0
    params_before: int = 0
    params_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rounds: int = 0
    seconds: float = 0.0
    per_pass: dict[str, PassStats] = field(default_factory=dict)
    check: dict | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["per_pass"] = [asdict(s) for s in self.per_pass.values()]
        return d


def count_nodes(graph: Graph) -> int:
    """Ops in the graph and all its subgraphs."""
    return sum(g.num_ops for g in graph.all_graphs())


def param_stats(graph: Graph) -> tuple[int, int]:
    """(elements, bytes) of all initializers, from types and shapes only."""
    count = bits = 0
    for g in graph.all_graphs():
        for v in g.initializers.values():
            t = v.const
            if t is None:
                continue
            n = math.prod(t.dims)
            count += n
            bits += n * _elem_bits(t.elem_type) if t.elem_type != TensorProto.STRING else t.nbytes * 8
    return count, (bits + 7) // 8


@functools.cache
def _elem_bits(elem_type: int) -> int:
    return elem_size_bits(elem_type)


def pipeline(level: int, passes: Iterable[str] | None = None,
             skip: Iterable[str] | None = None) -> list[str]:
    """The ordered pass names of ``level`` (or exactly ``passes``), minus ``skip``."""
    _load_passes()
    if level < 0 or level > 3:
        raise IrcError(f"--level must be 0..3, got {level}")
    names = list(passes) if passes else [n for n, s in REGISTRY.items() if s.level <= level]
    skip = set(skip or ())
    unknown = sorted((set(names) | skip) - set(REGISTRY))
    if unknown:
        raise IrcError(f"unknown pass(es): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    if level == 0 and not passes:
        return []
    return [n for n in names if n not in skip]


def optimize(graph: Graph, level: int = 2, *, passes: Iterable[str] | None = None,
             skip: Iterable[str] | None = None, fold_limit: int = DEFAULT_FOLD_LIMIT,
             fold_total: int = DEFAULT_FOLD_TOTAL, max_rounds: int = MAX_ROUNDS,
             on_pass: Callable[[str, Graph], None] | None = None, debug: bool = False) -> Report:
    """Optimize ``graph`` in place and return a Report.

    ``level``: 0 none, 1 cleanup, 2 standard-ONNX fusions (default), 3 irc-domain
    fusions. ``passes`` runs exactly those passes (in that order); ``skip`` drops
    some. ``on_pass(name, graph)`` is called after every pass run (the bisecting
    checker uses it). ``debug`` runs onnx.checker after every pass and names the
    pass that first produced an invalid model.
    """
    names = pipeline(level, passes, skip)
    ctx = Context(level=level, fold_limit=fold_limit, fold_total=fold_total, root=graph)
    params, nbytes = param_stats(graph)
    report = Report(level, names, count_nodes(graph), params_before=params, bytes_before=nbytes)
    start = time.perf_counter()
    # A pass is deterministic: rerunning it on a graph it already left unchanged,
    # with no other pass changing anything since, cannot change anything.
    version, seen = 0, {}
    for rnd in range(max_rounds):
        report.rounds = rnd + 1
        changed = False
        for name in names:
            if seen.get(name) == version:
                continue
            if _run_one(REGISTRY[name], graph, ctx, report):
                changed = True
                version += 1
            seen[name] = version
            if debug:
                _validate(graph, name)
            if on_pass is not None:
                on_pass(name, graph)
        if not changed:
            break
    report.seconds = time.perf_counter() - start
    report.nodes_after = count_nodes(graph)
    report.params_after, report.bytes_after = param_stats(graph)
    return report


def _run_one(spec: PassSpec, graph: Graph, ctx: Context, report: Report) -> bool:
    stats = report.per_pass.setdefault(spec.name, PassStats(spec.name))
    graphs = list(graph.all_graphs())
    n0 = sum(g.num_ops for g in graphs)
    p0, b0 = param_stats(graph) if stats.runs == 0 else (stats.params_after, stats.bytes_after)
    t0 = time.perf_counter()
    changed = False
    # Innermost graphs first, so a folded subgraph can be inlined by its parent's pass.
    for g in reversed(graphs):
        result = spec.run(g, ctx)
        stats.notes.extend(result.notes[: max(0, 50 - len(stats.notes))])
        if result.changed:
            changed = True
            stats.changes += 1
    stats.seconds += time.perf_counter() - t0
    if stats.runs == 0:
        stats.nodes_before, stats.params_before, stats.bytes_before = n0, p0, b0
    stats.runs += 1
    stats.nodes_after = count_nodes(graph) if changed else n0
    stats.params_after, stats.bytes_after = param_stats(graph) if changed else (p0, b0)
    stats.nodes_delta += stats.nodes_after - n0
    stats.params_delta += stats.params_after - p0
    stats.bytes_delta += stats.bytes_after - b0
    return changed


def _validate(graph: Graph, name: str) -> None:
    import onnx

    from ..ir import to_onnx

    try:
        onnx.checker.check_model(to_onnx(graph))
    except onnx.checker.ValidationError as exc:
        raise AssertionError(f"pass {name!r} produced an invalid model: {exc}") from None


def _load_passes() -> None:
    """Import the pass modules (they register themselves) in pipeline order."""
    import importlib

    for module in ("shapes", "fold", "cleanup", "fuse_bn", "gemm", "layout", "irc_domain"):
        importlib.import_module(f"{__package__}.{module}")
