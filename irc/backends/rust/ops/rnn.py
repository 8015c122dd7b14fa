"""LSTM, GRU and RNN (both layouts, sequence_lens, default activations)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ....ir import Graph, Value
from .base import FLOATS, OpCtx, op

DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


@op("LSTM", "GRU", "RNN")
def recurrent(c: OpCtx) -> str:
    c.types(0, FLOATS)
    kind = c.op.op_type
    direction = c.s("direction", "forward", {"forward", "reverse", "bidirectional"})
    acts = [a.decode() if isinstance(a, bytes) else a for a in c.attr_list("activations")]
    dirs = 2 if direction == "bidirectional" else 1
    c.need(not acts or acts == DEFAULT_ACTS[kind] * dirs, f"activations {acts}")
    c.need(c.a("clip") is None, "clip")
    c.need(not c.a("input_forget", 0), "input_forget=1")
    lens = "None"
    if c.has(4):
        c.need(c.t(4) == "i32", "sequence_lens dtype")
        lens = f"Some({c.x(4)})"
    hidden = int(c.a("hidden_size"))

    def opt(i: int) -> str:
        return f"Some({c.x(i)})" if c.has(i) else "None"

    if kind == "LSTM":
        cell = "rt::Cell::Lstm"
        c0, p = opt(6), opt(7)
    elif kind == "GRU":
        lbr = "true" if c.a("linear_before_reset", 0) else "false"
        cell = f"rt::Cell::Gru {{ linear_before_reset: {lbr} }}"
        c0, p = "None", "None"
    else:
        cell, c0, p = "rt::Cell::Rnn", "None", "None"
    c.multi = "tuple"
    c.n_results = 3
    packed = _packed(c, kind, hidden)
    if packed is not None and c.a(PROJECTED, 0) and c.has(8):
        c.need(c.t(8) == "i64", "ids dtype")
        return (f"rt::recurrent_lookup({cell}, {c.x(0)}, {c.x(8)}, {packed[1]}, {opt(3)}, {opt(5)}, {c0}, {p}, "
                f"{lens}, {hidden}, {c.string(direction)}, {'true' if c.a('layout', 0) else 'false'})")
    if packed is not None:
        w, r = packed
        return (f"rt::recurrent_packed({cell}, {c.x(0)}, {w}, {r}, {opt(3)}, {opt(5)}, {c0}, {p}, {lens}, "
                f"{hidden}, {c.string(direction)}, {'true' if c.a('layout', 0) else 'false'})")
    c.need(not c.a(PROJECTED, 0), "projected input without constant f32 weights")
    return (f"rt::recurrent({cell}, {c.x(0)}, {c.x(1)}, {c.x(2)}, {opt(3)}, {opt(5)}, {c0}, {p}, {lens}, "
            f"{hidden}, {c.string(direction)}, {'true' if c.a('layout', 0) else 'false'})")


# Attribute set by :func:`fold_embedding_projection`: input 0 holds `X @ W^T + biases` already.
PROJECTED = "irc_projected"
# Largest projected table (elements) the fold builds from an embedding.
MAX_TABLE = 1 << 23


def _packed(c: OpCtx, kind: str, hidden: int) -> tuple[str, str] | None:
    """(`w`, `r`) arguments of `rt::recurrent_packed`: R (and W) packed once at load, else None."""
    r = c.const(2)
    if c.t(0) != "f32" or r is None or r.dtype != np.float32 or r.ndim != 3:
        return None
    split = 2 * hidden if kind == "GRU" else 0
    r_field = c.b.prepared(c.ins[2], "packed", "rt::PackedGates", f"rt::PackedGates::new({{}}, {split})?")
    if r_field is None:
        return None
    if c.a(PROJECTED, 0):
        return "None", r_field
    w = c.const(1)
    if w is None or w.dtype != np.float32 or w.ndim != 3:
        return None
    w_field = c.b.prepared(c.ins[1], "packed", "rt::PackedGates", "rt::PackedGates::input({})?")
    return (None if w_field is None else (f"Some({w_field})", r_field))


def _single_use(graph: Graph, v: Value) -> bool:
    return len(graph.uses(v)) == 1 and v not in graph.outputs


def fold_embedding_projection(graph: Graph) -> None:
    """`LSTM(Transpose(Gather(E, idx)))` -> `LSTM(Gather(E @ W^T + b, Transpose(idx)))`.

    The input projection of a recurrent layer fed by an embedding is a row lookup in the
    projected table, computed here once (in float64, rounded to f32): the per-call GEMM over
    every step goes away. Only when E, W and B are f32 constants, the Gather and Transpose
    have no other reader and the table stays under :data:`MAX_TABLE` elements.
    """
    for rnn in list(graph.ops):
        if rnn.op_type not in ("LSTM", "GRU", "RNN") or rnn.domain not in ("", "ai.onnx") or rnn.attr(PROJECTED, 0):
            continue
        ins = rnn.inputs
        x = ins[0] if ins else None
        if x is None or len(ins) < 3:
            continue
        layout = int(rnn.attr("layout", 0) or 0)
        tr = None
        if layout == 0:
            tr = graph.producer(x)
            perm = [int(v) for v in (tr.attr("perm") or [])] if tr is not None and tr.op_type == "Transpose" else []
            if perm != [1, 0, 2] or not _single_use(graph, x):
                continue
            emb_out = tr.input(0)
        else:
            emb_out = x
        gather = graph.producer(emb_out)
        if gather is None or gather.op_type != "Gather" or int(gather.attr("axis", 0) or 0) != 0:
            continue
        if layout == 0 and not _single_use(graph, emb_out):
            continue
        table, idx = gather.input(0), gather.input(1)
        e = graph.constant_value(table)
        w = graph.constant_value(ins[1])
        b = graph.constant_value(ins[3]) if len(ins) > 3 and ins[3] is not None else None
        if (e is None or w is None or (len(ins) > 3 and ins[3] is not None and b is None)
                or idx is None or idx.shape is None or len(idx.shape) != 2 or idx.dtype != TensorProto.INT64):
            continue
        e, w = np.asarray(e), np.asarray(w)
        if e.dtype != np.float32 or w.dtype != np.float32 or e.ndim != 2 or w.ndim != 3 or w.shape[2] != e.shape[1]:
            continue
        dirs, gh = w.shape[0], w.shape[1]
        if e.shape[0] * dirs * gh > MAX_TABLE or e.shape[0] * dirs * gh > 8 * e.size:
            continue
        hidden = int(rnn.attr("hidden_size", 0) or 0)
        gru = rnn.op_type == "GRU"
        cols = []
        for d in range(dirs):
            col = e.astype(np.float64) @ w[d].astype(np.float64).T
            if b is not None:
                bd = np.asarray(b, dtype=np.float64).reshape(dirs, 2 * gh)[d]
                rb = bd[gh:].copy()
                if gru:
                    rb[2 * hidden:] = 0.0  # the new gate's recurrent bias stays in the cell
                col += bd[:gh] + rb
            cols.append(col)
        projected = graph.add_initializer(f"{table.name}_projected", np.concatenate(cols, axis=1).astype(np.float32))
        # Input 0 becomes the table and input 8 (past ONNX's seven) the ids: the runtime reads
        # the rows of each step in place (`rt::recurrent_lookup`), no gathered copy.
        graph.set_input(rnn, 0, projected)
        graph.set_input(rnn, 8, idx)
        rnn.set_attr(PROJECTED, 1)
        for dead in ([tr] if tr is not None else []) + [gather]:
            if all(o is None or (not graph.uses(o) and o not in graph.outputs) for o in dead.outputs):
                graph.remove_op(dead)
        if not graph.uses(table) and table not in graph.outputs:
            graph.remove_value(table)
