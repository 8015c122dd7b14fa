"""The Rust backend: emits a standalone ndarray crate for a model."""

from .crate import EmitOptions, emit_crate

__all__ = ["EmitOptions", "emit_crate"]
