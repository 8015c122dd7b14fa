"""irc: compile trained neural networks into standalone Rust."""

__version__ = "0.1.0"
