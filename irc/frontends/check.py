"""The conversion check: the source framework and onnxruntime on the same seeded inputs."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import ModelProto

from .. import oracle
from ..errors import IrcError, ModelError
from ..ir import Graph
from .source import Reference


@dataclass
class CheckReport:
    """Per-output errors at one batch size."""

    batch: int
    diffs: list[oracle.OutputDiff]
    tolerance: oracle.Tolerance | None

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.diffs)

    def lines(self) -> list[str]:
        tol = (f"atol {self.tolerance.atol:g}, rtol {self.tolerance.rtol:g}" if self.tolerance
               else "default tolerance per dtype")
        lines = [f"check at batch {self.batch} ({tol}):"]
        for d in self.diffs:
            status = "ok" if d.ok else "FAIL"
            extra = f" ({d.detail})" if d.detail else ""
            lines.append(f"  {d.name}: max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g} {status}{extra}")
        return lines

    def as_dict(self) -> dict:
        return {"batch": self.batch, "ok": self.ok,
                "outputs": [d.as_dict() for d in self.diffs]}


def tolerance(atol: float | None, rtol: float | None) -> oracle.Tolerance | None:
    """None means oracle's per-dtype defaults; one given value keeps the float32 default for the other."""
    if atol is None and rtol is None:
        return None
    default = oracle.tolerance_for("float32")
    return oracle.Tolerance(default.atol if atol is None else atol,
                            default.rtol if rtol is None else rtol)


def check_conversion(model: ModelProto, graph: Graph, reference: Reference,
                     batches: tuple[int, ...] = (oracle.DEFAULT_BATCH,), seed: int = 0,
                     atol: float | None = None, rtol: float | None = None) -> list[CheckReport]:
    """Run ``reference`` (the source framework) and onnxruntime on ``model`` at each batch size."""
    tol = tolerance(atol, rtol)
    session = oracle.session(model)
    names = [o.name for o in session.get_outputs()]
    reports = []
    for batch in batches:
        feeds = oracle.random_inputs(graph, batch=batch, seed=seed)
        try:
            expected = reference(feeds)
        except IrcError:
            raise
        except Exception as exc:  # the source framework's own errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"the source model failed on the check inputs ({first}); "
                             "use --no-check to skip the check") from None
        try:
            actual = dict(zip(names, session.run(names, feeds), strict=True))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime failed to run the converted model at batch {batch}: "
                             f"{str(exc).splitlines()[0]}") from None
        # A static batch in the model wins over the one asked for: report what was fed.
        fed = next((a.shape[0] for a in feeds.values() if a.ndim > 0), batch)
        reports.append(CheckReport(fed, oracle.compare(expected, actual, tol), tol))
    return reports
