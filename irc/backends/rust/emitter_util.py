"""Small text helpers shared by the emitter and the codegen units."""


def indent(text: str, spaces: int) -> str:
    """Every line of a (possibly multi-line) statement indented by ``spaces``."""
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())
