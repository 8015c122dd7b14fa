"""Giving graph inputs and outputs the names the user chose in the source framework."""

from __future__ import annotations

from ..ir import Graph


def rename_io(graph: Graph, renames: dict[str, str]) -> None:
    """Rename values by name; a value already holding a wanted name steps aside first."""
    pairs = [(graph.values[old], new) for old, new in renames.items()
             if old != new and old in graph.values]
    for value, new in pairs:
        blocker = graph.values.get(new)
        if blocker is not None and blocker is not value:
            graph.rename(blocker, graph.unique_name(new + "_inner"))
        graph.rename(value, new)


def reorder(values: list, order: list[str] | None) -> None:
    """Sort graph inputs or outputs in place into ``order`` (names not listed keep their place at the end)."""
    if not order:
        return
    rank = {name: i for i, name in enumerate(order)}
    values.sort(key=lambda v: rank.get(v.name, len(rank)))
