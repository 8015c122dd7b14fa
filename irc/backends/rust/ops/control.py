"""Control flow: If and Loop, whose subgraphs become nested Rust blocks."""

from __future__ import annotations

from ..emitter_util import indent
from .base import OpCtx, Unsupported, op


def _owned(expr: str) -> str:
    """An owned copy of a `&ArrayD` expression."""
    return expr.removeprefix("&") + ".clone()"


def _block(c: OpCtx, graph) -> tuple[object, list[str]]:
    child = c.b.child(graph)
    return child, child.emitter.emit_block(child)


def _tuple(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(" + ", ".join(items) + ")"


@op("If")
def if_(c: OpCtx) -> str:
    c.types(0, {"bool"})
    branches = []
    for name in ("then_branch", "else_branch"):
        graph = c.a(name)
        child, stmts = _block(c, graph)
        if len(graph.outputs) != len(c.outs):
            raise Unsupported("branch outputs differ from the node's")
        result = _tuple([_owned(child.ref(v)) for v in graph.outputs])
        branches.append("\n".join(["{"] + [indent(s, 4) for s in stmts] + [f"    {result}", "}"]))
    c.no_try = True
    if len(c.outs) > 1:
        c.multi = "tuple"
    return f"if rt::scalar({c.x(0)})? {branches[0]} else {branches[1]}"


@op("Loop")
def loop(c: OpCtx) -> str:
    body = c.a("body")
    n_state = len(c.ins) - 2
    n_scan = len(body.outputs) - 1 - n_state
    if n_state < 0 or n_scan < 0:
        raise Unsupported("malformed Loop body")
    child = c.b.child(body)
    names = child.locals
    trip = f"Some(({c.scalar_expr(0)}).to_i64())" if c.has(0) else "None"
    cond0 = f"({c.scalar_expr(1)}).is_true()" if c.has(1) else "true"
    it_name, go_name, max_name = names.fresh("iteration"), names.fresh("keep_going"), names.fresh("max_trip")
    lines = [f"let {max_name}: Option<i64> = {trip};", f"let mut {go_name} = {cond0};",
             f"let mut {it_name}: i64 = 0;"]
    states = []
    for k in range(n_state):
        name = names.fresh(f"loop_state_{k}")
        states.append(name)
        lines.append(f"let mut {name} = {_owned(c.x(2 + k))};")
        child.names[body.inputs[2 + k]] = name
    scans = []
    for k in range(n_scan):
        name = names.fresh(f"loop_scan_{k}")
        scans.append(name)
        lines.append(f"let mut {name}: Vec<ArrayD<{child.rtype(body.outputs[1 + n_state + k])}>> = Vec::new();")
    inner = []
    iter_v, cond_v = body.inputs[0], body.inputs[1]
    if body.uses(iter_v) or body.is_output(iter_v):
        child.names[iter_v] = names.fresh("iteration_number")
        inner.append(f"let {child.names[iter_v]} = rt::scalar_tensor({it_name});")
    if body.uses(cond_v) or body.is_output(cond_v):
        child.names[cond_v] = names.fresh("condition")
        inner.append(f"let {child.names[cond_v]} = rt::scalar_tensor({go_name});")
    inner += child.emitter.emit_block(child)
    nexts = [names.fresh(f"next_state_{k}") for k in range(n_state)]
    for k in range(n_state):
        inner.append(f"let {nexts[k]} = {_owned(child.ref(body.outputs[1 + k]))};")
    for k in range(n_scan):
        inner.append(f"{scans[k]}.push({_owned(child.ref(body.outputs[1 + n_state + k]))});")
    inner.append(f"{go_name} = rt::scalar({child.ref(body.outputs[0])})?.is_true();")
    for k in range(n_state):
        inner.append(f"{states[k]} = {nexts[k]};")
    inner.append(f"{it_name} += 1;")
    lines.append(f"while {go_name} && {max_name}.is_none_or(|m| {it_name} < m) {{")
    lines += [indent(s, 4) for s in inner]
    lines.append("}")
    results = states + [f"rt::stack_parts(&{s})?" for s in scans]
    lines.append(_tuple(results))
    c.no_try = True
    if len(c.outs) > 1:
        c.multi = "tuple"
    return "{\n" + "\n".join(indent(s, 4) for s in lines) + "\n}"


@op("Scan")
def scan(c: OpCtx) -> str:
    c.need(c.opset >= 9, "Scan before opset 9 (batched form)")
    body = c.a("body")
    m = int(c.a("num_scan_inputs"))
    n_state = len(c.ins) - m
    n_out = len(body.outputs) - n_state
    in_axes = list(c.a("scan_input_axes") or [0] * m)
    in_dirs = list(c.a("scan_input_directions") or [0] * m)
    out_axes = list(c.a("scan_output_axes") or [0] * n_out)
    out_dirs = list(c.a("scan_output_directions") or [0] * n_out)
    child = c.b.child(body)
    names = child.locals
    lines, states, outs = [], [], []
    for k in range(n_state):
        name = names.fresh(f"scan_state_{k}")
        states.append(name)
        lines.append(f"let mut {name} = {_owned(c.x(k))};")
        child.names[body.inputs[k]] = name
    length = names.fresh("scan_length")
    first = c.x(n_state)
    ax0 = int(in_axes[0])
    lines.append(f"let {length} = {first.removeprefix('&')}.shape()[rt::axis({ax0}, {first.removeprefix('&')}.ndim())?];")
    for k in range(n_out):
        name = names.fresh(f"scan_out_{k}")
        outs.append(name)
        lines.append(f"let mut {name}: Vec<ArrayD<{child.rtype(body.outputs[n_state + k])}>> = Vec::new();")
    step = names.fresh("step")
    inner = []
    for j in range(m):
        name = names.fresh(f"scan_in_{j}")
        child.names[body.inputs[n_state + j]] = name
        pos = f"{length} - 1 - {step}" if in_dirs[j] else step
        inner.append(f"let {name} = rt::index_axis({c.x(n_state + j)}, {int(in_axes[j])}, {pos})?;")
    inner += child.emitter.emit_block(child)
    nexts = [names.fresh(f"next_scan_state_{k}") for k in range(n_state)]
    for k in range(n_state):
        inner.append(f"let {nexts[k]} = {_owned(child.ref(body.outputs[k]))};")
    for k in range(n_out):
        inner.append(f"{outs[k]}.push({_owned(child.ref(body.outputs[n_state + k]))});")
    for k in range(n_state):
        inner.append(f"{states[k]} = {nexts[k]};")
    lines.append(f"for {step} in 0..{length} {{")
    lines += [indent(s, 4) for s in inner]
    lines.append("}")
    results = states + [f"rt::stack_axis(&{o}, {int(out_axes[k])}, {'true' if out_dirs[k] else 'false'})?"
                        for k, o in enumerate(outs)]
    lines.append(_tuple(results))
    c.no_try = True
    if len(c.outs) > 1:
        c.multi = "tuple"
    return "{\n" + "\n".join(indent(s, 4) for s in lines) + "\n}"
