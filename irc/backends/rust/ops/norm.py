"""Normalization layers."""

from __future__ import annotations

from .base import FLOATS, OpCtx, float_lit, op, slice_lit
from .elementwise import arg


def _eps(c: OpCtx, default: float = 1e-5) -> str:
    return float_lit(c.a("epsilon", default))


def _only_first_output(c: OpCtx) -> None:
    extra = [v for v in c.outs[1:] if v is not None and c.b.graph.uses(v)]
    c.need(not extra and not any(c.b.graph.is_output(v) for v in c.outs[1:] if v is not None),
           "training-mode outputs")


@op("BatchNormalization")
def batch_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    _only_first_output(c)
    c.need(not c.a("training_mode", 0), "training_mode=1")
    args = ", ".join(c.x(i) for i in range(5))
    return f"rt::batch_norm({args}, {_eps(c)})"


@op("InstanceNormalization")
def instance_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::instance_norm({c.x(0)}, {c.x(1)}, {c.x(2)}, {_eps(c)})"


@op("LayerNormalization")
def layer_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    rest = f"{c.x(1)}, {bias}, {int(c.a('axis', -1))}, {_eps(c)}"
    if any(v is not None for v in c.outs[1:]):
        c.multi, c.n_results = "tuple", 3
        return f"rt::layer_norm_stats({c.x(0)}, {rest})"
    return f"rt::layer_norm({arg(c, 0)}, {rest})"


@op("irc.LayerNormalization")
def irc_layer_norm(c: OpCtx) -> str:
    """Over the last axis only, with Scale and B always present (docs/IRC_DOMAIN.md)."""
    c.types(0, {"f32"})
    return f"rt::layer_norm({arg(c, 0)}, {c.x(1)}, Some({c.x(2)}), -1, {_eps(c)})"


@op("RMSNormalization")
def rms_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::rms_norm({c.x(0)}, {c.x(1)}, {int(c.a('axis', -1))}, {_eps(c)})"


@op("GroupNormalization")
def group_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return (f"rt::group_norm({c.x(0)}, {c.x(1)}, {c.x(2)}, {int(c.a('num_groups'))}, {_eps(c)})")


@op("LRN")
def lrn(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return (f"rt::lrn({c.x(0)}, {int(c.a('size'))}, {float_lit(c.a('alpha', 1e-4))}, "
            f"{float_lit(c.a('beta', 0.75))}, {float_lit(c.a('bias', 1.0))})")


@op("MeanVarianceNormalization")
def mvn(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::mean_variance_normalization({c.x(0)}, {slice_lit(c.attr_list('axes', [0, 2, 3]))})"


@op("LpNormalization")
def lp_norm(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::lp_normalization({c.x(0)}, {int(c.a('axis', -1))}, {int(c.a('p', 2))})"
