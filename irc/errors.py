"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class IrcError(Exception):
    """A user-facing error: bad file, unsupported op, bad flag. The message says what and where."""


class ModelError(IrcError):
    """The model file is missing, unreadable, corrupt or invalid."""


class UnsupportedError(IrcError):
    """The model uses something irc cannot handle; the message lists every instance."""
