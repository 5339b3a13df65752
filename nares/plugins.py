"""Plug-ins loaded by name: `NARES_PLUGINS=module[:function],...` imports each module once (its import
registers its search spaces, evaluations, data sets); `module:function` also calls `function()`.

Every registry calls `load_plugins()` before a lookup, so a plug-in named in the environment is found in any
process that inherits it (the CLI, Ray actors, Prefect workers). Imports only the standard library and
`nares.environment`.
"""

from __future__ import annotations

import importlib

from nares.environment import environment, split_specs
from nares.errors import ConfigError

ENV_VAR = "NARES_PLUGINS"
_loaded: set[str] = set()


def plugin_specs(value: str | None = None) -> list[str]:
    """The plug-in specs of `value` (default: the environment's `NARES_PLUGINS`), in order, blanks dropped."""
    return list(environment().plugins if value is None else split_specs(value))


def load_plugins(specs: list[str] | None = None) -> None:
    """Import every plug-in not yet imported; a bad spec is one `ConfigError` line naming it."""
    for spec in plugin_specs() if specs is None else specs:
        if spec in _loaded:
            continue
        module, _, func = spec.partition(":")
        try:
            mod = importlib.import_module(module)
            if func:
                getattr(mod, func)()
        except (ImportError, AttributeError, TypeError) as e:
            raise ConfigError(f"{ENV_VAR} plug-in {spec!r} cannot be loaded: {type(e).__name__}: {e}") from None
        _loaded.add(spec)
