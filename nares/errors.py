"""Error types raised at the library's boundaries; each message is one line naming the bad value."""


class NaresError(Exception):
    """Base class: a user-facing error whose message is a single line."""


class ArchError(NaresError, ValueError):
    """A malformed architecture encoding."""


class DataError(NaresError):
    """A missing, corrupt or malformed data file."""


class ConfigError(NaresError, ValueError):
    """A bad preset or parameter in params.yaml."""


ECHO_LIMIT = 60


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for an error message, cut after `limit` characters (with the full length) when longer.

    `shown("x" * 10_000)` → `'xxx…xxx… (10000 chars)`: a message never echoes a huge argument in full.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[:limit]}… ({size} chars)"
