"""Example models and scripts (importable so tests and `irc import` specs can name them)."""
