"""Search spaces as plug-ins: the registry by name (`register_space`, `get_space`, `space_names`) and
`space_for(cfg)`, the space a preset names (`space: {name: wrn, ...}`; `wrn` when the name is absent).

Owns the mapping name → `SearchSpace`; the interface is `nares.spaces.base`, the WRN macro space
`nares.spaces.wrn` (registered as "wrn"). Must not import torch, the evaluator, the store or the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nares.errors import ConfigError
from nares.plugins import load_plugins
from nares.spaces.base import SearchSpace, SpaceIndex

DEFAULT_SPACE = "wrn"
_BUILTIN = {"wrn": "nares.spaces.wrn", "nb201": "nares.spaces.nb201", "robnet": "nares.spaces.robnet"}  # imported on first lookup (each module defines SPACE)
_SPACES: dict[str, SearchSpace] = {}


def _builtins() -> None:
    import importlib

    for name, module in _BUILTIN.items():
        if name not in _SPACES:
            _SPACES[name] = importlib.import_module(module).SPACE


def register_space(space: SearchSpace) -> SearchSpace:
    """Register `space` under `space.name` (re-registering the same name replaces it)."""
    if not isinstance(space, SearchSpace):
        raise TypeError(f"register_space expects a SearchSpace, got {type(space).__name__}")
    _SPACES[space.name] = space
    return space


def space_names() -> list[str]:
    _builtins()
    load_plugins()
    return sorted(_SPACES)


def get_space(name: str) -> SearchSpace:
    """The registered space `name`; an unknown name is one line listing the known ones."""
    if name not in _SPACES:
        _builtins()
    if name not in _SPACES:
        load_plugins()
    if name not in _SPACES:
        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(sorted(_SPACES))} "
                          "(register one with nares.spaces.register_space, loaded via NARES_PLUGINS)")
    return _SPACES[name]


def configured_space(section: Mapping[str, Any], key: str = "space") -> SearchSpace:
    """The space a preset's `space:` section names (`name`, default wrn), under the section's settings (an empty
    section: the registered space as is); a bad name or setting is one ConfigError line naming `key.<setting>`."""
    name = section.get("name", DEFAULT_SPACE)
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name is {name!r}; expected a search space name")
    try:
        space = get_space(name)
        return space.configure(section) if section else space
    except ConfigError as e:
        raise ConfigError(f"{key}.{e}" if not str(e).startswith("unknown") else f"{key}.name: {e}") from None


def recorded_space(meta: Mapping[str, Any]) -> SearchSpace:
    """The space a run's files record: `space` (default wrn) under `space_settings`, the preset's section that
    shaped the run's model (a checkpoint's meta, a run's train_done.json)."""
    name, settings = meta.get("space", DEFAULT_SPACE), meta.get("space_settings")
    return configured_space({"name": name, **settings}) if settings else get_space(name)


def space_for(cfg: Mapping[str, Any]) -> SearchSpace:
    """The space of a resolved preset (its `space:` section; `wrn` with the section's settings by default)."""
    return configured_space(dict(cfg.get("space") or {}))


__all__ = ["DEFAULT_SPACE", "SearchSpace", "SpaceIndex", "configured_space", "get_space", "recorded_space",
           "register_space", "space_for", "space_names"]
