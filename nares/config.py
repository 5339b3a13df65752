"""Presets from params.yaml: `full` is the protocol, other presets override parts of it (deep merge).

Library code never hard-codes a protocol number; it reads the resolved preset dict.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from nares.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_PRESET = "full"


def params_path() -> Path:
    """params.yaml: `$NARES_PARAMS`, else the repository's own."""
    return Path(os.environ.get("NARES_PARAMS", REPO_ROOT / "params.yaml"))


def _merge(base: dict, over: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in out:
            raise ConfigError(f"{where}.{k} is not a key of the `{BASE_PRESET}` preset")
        out[k] = _merge(out[k], v, f"{where}.{k}") if isinstance(v, dict) and isinstance(out[k], dict) else copy.deepcopy(v)
    return out


def load_preset(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The resolved preset `name` (a plain nested dict, with `name` added)."""
    path = Path(path) if path else params_path()
    try:
        presets = yaml.safe_load(path.read_text())["presets"]
    except FileNotFoundError:
        raise ConfigError(f"params file {path} does not exist") from None
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a params file with a `presets` mapping ({type(e).__name__})") from None
    if name not in presets:
        raise ConfigError(f"preset {name!r} is not in {path} (have: {', '.join(presets)})")
    cfg = presets[BASE_PRESET] if name == BASE_PRESET else _merge(presets[BASE_PRESET], presets[name] or {}, name)
    return {**cfg, "name": name}


def preset_hash(cfg: dict[str, Any]) -> str:
    """A short, stable hash of a resolved preset (recorded in checkpoints and the ledger)."""
    body = {k: v for k, v in cfg.items() if k != "name"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
