"""Every environment variable of the library is read through `nares.environment` (one typed object)."""

from __future__ import annotations

import pytest

from nares.environment import Environment, environment
from nares.errors import ConfigError


def test_plugins_and_ray_address_fields() -> None:
    e = Environment.from_env({"NARES_PLUGINS": " a.b:setup, ,c ", "RAY_ADDRESS": "127.0.0.1:6380"})
    assert (e.plugins, e.ray_address) == (("a.b:setup", "c"), "127.0.0.1:6380")
    d = Environment.from_env({"RAY_ADDRESS": ""})
    assert (d.plugins, d.ray_address) == ((), None)


def test_plugin_specs_come_from_the_environment(monkeypatch) -> None:
    from nares.plugins import plugin_specs

    monkeypatch.setenv("NARES_PLUGINS", "x.y, z:f")
    assert plugin_specs() == ["x.y", "z:f"] == list(environment().plugins)
    assert plugin_specs(" q ,") == ["q"]


def test_store_readers_go_through_the_environment(tmp_path, monkeypatch) -> None:
    from nares.store.settings import StoreSettings, nares_home, s3_port

    monkeypatch.setenv("NARES_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("NARES_S3_PORT", "9555")
    monkeypatch.delenv("NARES_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert nares_home() == tmp_path / "h" == environment().home
    assert s3_port() == 9555 and StoreSettings.from_env().endpoint_url == "http://127.0.0.1:9555"
    monkeypatch.setenv("NARES_HOME", "")   # was: the current directory, silently
    with pytest.raises(ConfigError, match="^environment variable NARES_HOME is set but empty"):
        nares_home()


def test_releases_and_tables_go_through_the_environment(tmp_path, monkeypatch) -> None:
    from nares.release import releases_root
    from nares.sweep.paths import default_tables_root

    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "r"))
    monkeypatch.setenv("NARES_TABLES", str(tmp_path / "t"))
    assert releases_root() == tmp_path / "r" and default_tables_root("tiny", 3) == tmp_path / "t" / "tiny-seed3"
    monkeypatch.setenv("NARES_TABLES", "")      # was: silently the repository's tables/
    with pytest.raises(ConfigError, match="^environment variable NARES_TABLES is set but empty"):
        default_tables_root("tiny", 3)
    monkeypatch.delenv("NARES_TABLES")
    monkeypatch.setenv("NARES_RELEASES", "")    # was: silently the current folder
    with pytest.raises(ConfigError, match="^environment variable NARES_RELEASES is set but empty"):
        releases_root()


def test_stack_ports_and_caches_go_through_the_environment(tmp_path, monkeypatch) -> None:
    from factory import stack
    from nares.ports import Ports

    monkeypatch.setenv("NARES_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("NARES_PREFECT_PORT", "4321")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    monkeypatch.delenv("NARES_CACHE_DIR", raising=False)
    assert Ports.from_env().prefect == 4321 == environment().ports().prefect
    env = stack.stack_env()
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api" and env["MPLCONFIGDIR"] == str(tmp_path / "mpl")
    assert env["NARES_CACHE_DIR"] == str(tmp_path / "h" / "cache")
    monkeypatch.setenv("NARES_HOME", "")        # a bad variable is one line before any port is read
    with pytest.raises(ConfigError, match="^environment variable NARES_HOME is set but empty"):
        Ports.from_env()
