"""LSTM, GRU and RNN (both layouts, sequence_lens, default activations)."""

from __future__ import annotations

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
    return (f"rt::recurrent({cell}, {c.x(0)}, {c.x(1)}, {c.x(2)}, {opt(3)}, {opt(5)}, {c0}, {p}, {lens}, "
            f"{hidden}, {c.string(direction)}, {'true' if c.a('layout', 0) else 'false'})")
