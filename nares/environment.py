"""The environment variables the library reads, in one typed, validated object.

| variable             | meaning                                        | default                     |
|----------------------|------------------------------------------------|-----------------------------|
| `NARES_HOME`         | factory state folder (run folders, logs, pids) | `<repo>/var`                |
| `NARES_PARAMS`       | the params file (presets)                      | `<repo>/params.yaml`        |
| `NARES_DATA_DIR`     | data root (`nares data fetch` downloads there) | `~/.cache/nares/data`       |
| `NARES_CACHE_DIR`    | query API cache                                | `~/.cache/nares`            |
| `NARES_TABLES`       | sweep tables root                              | unset: `<repo>/tables/...`  |
| `NARES_RELEASES`     | local release folder                           | `<repo>/releases`           |
| `NARES_OBJECTS_DIR`  | local checkpoint objects of a release          | unset: beside the release   |
| `NARES_PLUGINS`      | plug-ins to import (`module[:function],...`)   | none                        |
| `RAY_ADDRESS`        | the Ray cluster the sweep attaches to          | unset: a local cluster      |

Two groups have an owner of their own, reached from the same object: the store's variables (`NARES_S3_ENDPOINT`,
bucket, prefix, `AWS_*`) through `Environment.store_settings()` (`StoreSettings.from_env`), and the embedded
stack's ports (`NARES_S3_PORT`, `NARES_PREFECT_PORT`, `NARES_RAY_PORT`, ...) through `Environment.ports()`
(`nares.ports.Ports.from_env`, which checks each is an integer port and that no two collide).
`environment()` reads `os.environ` when called (workers change it at start-up, tests patch it): one place
reads each variable, and a bad value (an empty path, a bad port) is one `ConfigError` line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nares.errors import ConfigError

if TYPE_CHECKING:
    from nares.ports import Ports
    from nares.store.settings import StoreSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
PATH_VARS = ("NARES_HOME", "NARES_PARAMS", "NARES_DATA_DIR", "NARES_CACHE_DIR", "NARES_TABLES", "NARES_RELEASES",
             "NARES_OBJECTS_DIR")


def split_specs(value: str) -> tuple[str, ...]:
    """The comma-separated items of `value`, stripped, blanks dropped (`NARES_PLUGINS`)."""
    return tuple(s.strip() for s in value.split(",") if s.strip())


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(f"environment variable {name} is set but empty; unset it or give it a path")
    return Path(value).expanduser()


@dataclass(frozen=True)
class Environment:
    """The factory's settings from the environment (defaults applied; `params_set`: NARES_PARAMS was given)."""

    home: Path
    params: Path
    params_set: bool
    data_dir: Path
    cache_dir: Path
    tables: Path | None
    releases: Path
    objects_dir: Path | None
    plugins: tuple[str, ...]
    ray_address: str | None
    source: Mapping[str, str] = field(repr=False, compare=False)  # the mapping read (holds secrets: never shown)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Environment:
        """Read and check every variable of `env` (default `os.environ`)."""
        e = os.environ if env is None else env
        p = {name: _path(e, name) for name in PATH_VARS}
        home = Path.home()
        return cls(
            home=(p["NARES_HOME"] or REPO_ROOT / "var").resolve(),
            params=p["NARES_PARAMS"] or REPO_ROOT / "params.yaml",
            params_set=p["NARES_PARAMS"] is not None,
            data_dir=p["NARES_DATA_DIR"] or home / ".cache" / "nares" / "data",
            cache_dir=p["NARES_CACHE_DIR"] or home / ".cache" / "nares",
            tables=p["NARES_TABLES"],
            releases=(p["NARES_RELEASES"] or REPO_ROOT / "releases").resolve(),
            objects_dir=p["NARES_OBJECTS_DIR"],
            plugins=split_specs(e.get("NARES_PLUGINS", "")),
            ray_address=e.get("RAY_ADDRESS") or None,
            source=e,
        )

    def store_settings(self) -> StoreSettings:
        """The object store's settings from the same variables (`StoreSettings.from_env`)."""
        from nares.store.settings import StoreSettings

        return StoreSettings.from_env(dict(self.source))

    def ports(self) -> Ports:
        """The embedded stack's ports from the same variables, checked (`Ports.from_env`)."""
        from nares.ports import Ports

        return Ports.from_env(self.source)


def environment() -> Environment:
    """The current environment, checked (see the module docstring)."""
    return Environment.from_env()
