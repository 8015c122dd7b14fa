"""Turning model-controlled names into safe Rust: identifiers and string literals.

A model is untrusted input. Nothing from it is pasted into generated source:
identifiers keep only ``[a-z0-9_]`` and never collide with keywords, strings go
through :func:`rust_str`, and doc comments only ever show escaped literals.
"""

from __future__ import annotations

import re
import unicodedata

RUST_KEYWORDS = frozenset("""
as break const continue crate else enum extern false fn for if impl in let loop match mod move mut
pub ref return self Self static struct super trait true type unsafe use where while async await dyn
abstract become box do final macro override priv typeof unsized virtual yield try gen union
rt ndarray std core alloc main
""".split())


def ident(name: str, fallback: str = "v") -> str:
    """A snake_case Rust identifier derived from ``name`` (not unique by itself)."""
    text = unicodedata.normalize("NFKD", name or "")
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)[:48].rstrip("_")
    if not text:
        text = fallback
    if text[0].isdigit():
        text = f"{fallback}_{text}"
    if text in RUST_KEYWORDS:
        text += "_"
    return text


def type_name(name: str, fallback: str = "Model") -> str:
    """An UpperCamelCase Rust type name derived from ``name``."""
    parts = ident(name, "m").strip("_").split("_")
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not text or not text[0].isalpha():
        text = fallback + text
    return text if text not in {"Self", "Model", "Error", "Result", "Vec", "Option"} else f"{text}Net"


def rust_str(text: str) -> str:
    """A Rust string literal holding exactly ``text``."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\u{{{code:x}}}")
    return '"' + "".join(out) + '"'


def doc(text: str) -> str:
    """Text safe inside a `///` doc comment: one line, printable ASCII, escaped like a literal."""
    return rust_str(text)[1:-1]


class Namer:
    """Hands out unique identifiers in one Rust scope."""

    def __init__(self, reserved: set[str] | None = None):
        self.taken: set[str] = set(reserved or ())

    def fresh(self, name: str, fallback: str = "v") -> str:
        base = ident(name, fallback)
        candidate, n = base, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{base}_{n}"
        self.taken.add(candidate)
        return candidate
