"""Codegen units, one per op family. Each registers handlers with :func:`irc.backends.rust.ops.base.op`."""

from . import (  # noqa: F401  (imported for their registrations)
    attention,
    control,
    conv,
    elementwise,
    embed,
    matmul,
    norm,
    pool,
    quant,
    reduce,
    resize,
    rnn,
    shape,
)
from .base import HANDLERS, OpCtx, Unsupported

__all__ = ["HANDLERS", "OpCtx", "Unsupported"]
