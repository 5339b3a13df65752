"""Presets from params.yaml: `full` is the protocol, other presets override parts of it (deep merge); a preset
with `extends: other` overrides `other` instead (chains allowed, cycles refused).

Library code never hard-codes a protocol number; it reads the resolved preset dict (`load_preset`), or the
same preset typed (`load_settings`, `nares.settings.Settings`). Both are checked against the schema of
`nares.settings` when loaded, before any data is read: a bad value is one `ConfigError` line naming the file,
the dotted key (`presets.tiny.train.epochs`), the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from nares.environment import REPO_ROOT, environment
from nares.errors import ConfigError, shown
from nares.settings import Settings, parse_settings

__all__ = ["BASE_PRESET", "REPO_ROOT", "load_preset", "load_settings", "params_path", "preset_for_space", "preset_hash",
           "preset_names"]

BASE_PRESET = "full"
EXTENDS = "extends"  # a preset's optional key: the preset it changes (default: `full`)


def params_path() -> Path:
    """params.yaml: `$NARES_PARAMS`, else the repository's own."""
    env = environment()
    if env.params_set and env.params.is_dir():
        raise ConfigError(f"environment variable NARES_PARAMS names a directory ({env.params}); expected a params file")
    return env.params


def _read_presets(path: Path) -> dict[str, Any]:
    """The `presets` mapping of a params file, with `full` in it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"params file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"params file {path} is a directory; expected a YAML file") from None
    except OSError as e:
        raise ConfigError(f"params file {path} cannot be read ({type(e).__name__})") from None
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"params file {path} is not UTF-8 text (byte {e.start}); expected a YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"params file {path} is not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    presets = doc.get("presets") if isinstance(doc, dict) else None
    if not isinstance(presets, dict):
        got = f"presets is {shown(presets)}" if isinstance(doc, dict) and "presets" in doc else "it has no `presets` key"
        raise ConfigError(f"{path}: {got}; expected a mapping of preset names to presets")
    if BASE_PRESET not in presets:
        raise ConfigError(f"{path}: presets.{BASE_PRESET} is missing; every preset inherits from it")
    return presets


def _chain(presets: dict[str, Any], name: str) -> list[str]:
    """The presets whose overrides make `name`, outermost last: `name` alone, or (with `extends: other`) the chain
    of `other` first. A preset that is not a mapping, an unknown `extends` or a cycle is one ConfigError line."""
    chain: list[str] = []
    link: Any = name
    while link != BASE_PRESET:
        over = presets[link]
        if over is not None and not isinstance(over, dict):
            raise ConfigError(f"presets.{link} is {shown(over)}; expected a mapping of the keys it changes")
        chain.append(link)
        link = (over or {}).get(EXTENDS, BASE_PRESET)
        if not isinstance(link, str) or link not in presets:
            raise ConfigError(f"presets.{chain[-1]}.{EXTENDS} is {shown(link)}; expected the name of another preset "
                              f"({', '.join(map(str, presets))})")
        if link in chain:
            raise ConfigError(f"presets.{chain[-1]}.{EXTENDS} is {link!r}, which extends it back (a cycle)")
    return chain[::-1]


def _open_section(where: str) -> bool:
    """`presets.<p>.eval` and `presets.<p>.eval.suites` take keys `full` lacks: a suite of the preset's own and the
    settings section of a registered (plug-in) evaluation (`nares.settings` refuses any other key with one line)."""
    parts = where.split(".")
    return len(parts) >= 3 and parts[2] == "eval" and (len(parts) == 3 or (len(parts) == 4 and parts[3] == "suites"))


def _merge(base: dict, over: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "space" and isinstance(v, dict) and "name" in v and where.count(".") == 1:
            out[k] = copy.deepcopy(v)  # a preset that names its search space gives that space's whole section
            continue
        if k not in out:
            if _open_section(where):  # a preset's own suite or a plug-in evaluation's section: checked by settings
                out[k] = copy.deepcopy(v)
                continue
            raise ConfigError(f"{where}.{k} is not a key of the `{BASE_PRESET}` preset")
        out[k] = _merge(out[k], v, f"{where}.{k}") if isinstance(v, dict) and isinstance(out[k], dict) else copy.deepcopy(v)
    return out


def _load(name: str, path: str | Path | None) -> tuple[dict[str, Any], Settings]:
    path = Path(path) if path else params_path()
    presets = _read_presets(path)
    if name not in presets:
        raise ConfigError(f"preset {name!r} is not in {path} (have: {', '.join(map(str, presets))})")
    try:
        cfg = presets[BASE_PRESET]
        settings = parse_settings(cfg, f"presets.{BASE_PRESET}")  # an inherited bad value is named where it is
        if name != BASE_PRESET:
            for link in _chain(presets, name):
                over = dict(presets[link] or {})
                over.pop(EXTENDS, None)
                cfg = _merge(cfg, over, f"presets.{link}")
            settings = parse_settings(cfg, f"presets.{name}")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return {**cfg, "name": name}, dataclasses.replace(settings, name=name)


def load_preset(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The resolved preset `name` (a plain nested dict with the file's values, `name` added), validated."""
    return _load(name, path)[0]


def load_settings(name: str, path: str | Path | None = None) -> Settings:
    """The resolved preset `name` as the typed, frozen `nares.settings.Settings` (same checks as `load_preset`)."""
    return _load(name, path)[1]


def preset_names(path: str | Path | None = None) -> list[str]:
    """The names of the presets in the params file (`full` first as written)."""
    return [str(n) for n in _read_presets(Path(path) if path else params_path())]


def preset_for_space(preset: str, space: str | None, path: str | Path | None = None) -> str:
    """The preset a run of `space` uses: `preset` itself when it names that space (or `space` is None), else the
    preset `<space>-<preset>` (`space=nb201` with `tiny` → `nb201-tiny`); neither is one ConfigError line."""
    if space is None:
        return preset

    def space_of(name: str) -> str:
        return str((load_preset(name, path).get("space") or {}).get("name", "wrn"))

    if space_of(preset) == space:
        return preset
    derived = f"{space}-{preset}"
    names = preset_names(path)
    if derived in names and space_of(derived) == space:
        return derived
    fitting = [n for n in names if space_of(n) == space]
    raise ConfigError(f"preset {preset!r} is for space {space_of(preset)!r}, not {space!r}, and there is no preset "
                      f"{derived!r}; presets for {space!r}: {', '.join(fitting) or 'none'}")


def preset_hash(cfg: dict[str, Any]) -> str:
    """A short, stable hash of a resolved preset (recorded in checkpoints and the ledger)."""
    body = {k: v for k, v in cfg.items() if k != "name"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
