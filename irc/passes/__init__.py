"""Optimization passes: fold, prune and fuse the IR, by level.

``optimize(graph, level=2)`` is the entry point (see :mod:`irc.passes.manager`).
Levels: 0 nothing, 1 cleanup, 2 standard-ONNX fusions (default), 3 irc-domain
fusions that only the Rust backend (and onnxruntime, through the model-local
functions irc writes) understands; see docs/IRC_DOMAIN.md.
"""

from .manager import (
    DEFAULT_FOLD_LIMIT,
    DEFAULT_FOLD_TOTAL,
    REGISTRY,
    Context,
    PassResult,
    Report,
    optimize,
    pipeline,
)

__all__ = ["DEFAULT_FOLD_LIMIT", "DEFAULT_FOLD_TOTAL", "REGISTRY", "Context", "PassResult",
           "Report", "optimize", "pipeline"]
