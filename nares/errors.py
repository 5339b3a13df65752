"""Error types raised at the library's boundaries; each message is one line naming the bad value."""


class NaresError(Exception):
    """Base class: a user-facing error whose message is a single line."""


class ArchError(NaresError, ValueError):
    """A malformed architecture encoding."""


class DataError(NaresError):
    """A missing, corrupt or malformed data file."""


class ConfigError(NaresError, ValueError):
    """A bad preset or parameter in params.yaml."""
