"""Search spaces as plug-ins: the registry, the WRN space's interface, its NAS tables and preset settings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from nares.errors import ArchError, ConfigError
from nares.models.count import count_module
from nares.spaces import SearchSpace, get_space, register_space, space_for, space_names
from nares.spaces.wrn import (
    N_ARCHS,
    SPACE,
    WIDTHS,
    Arch,
    ArchIndex,
    WRNSpace,
    all_archs,
    choice_indices,
    neighbours,
    one_hot,
)

WRN_34_10 = Arch(5, 10, 5, 10, 5, 10)


def test_registry_knows_wrn_and_names_the_known_on_error() -> None:
    assert get_space("wrn") is SPACE and "wrn" in space_names()
    with pytest.raises(ConfigError) as exc:
        get_space("nb101")
    msg = str(exc.value)
    assert msg.startswith("unknown search space 'nb101'; known: ") and "wrn" in msg and "\n" not in msg
    with pytest.raises(TypeError):
        register_space(object())  # type: ignore[arg-type]


def test_wrn_space_interface_matches_the_module_functions() -> None:
    s = get_space("wrn")
    assert isinstance(s, SearchSpace) and s.size == N_ARCHS == 15_625
    assert list(s.enumerate()) == all_archs()
    assert s.parse("5-10-5-10-5-10") == WRN_34_10 and s.format(WRN_34_10) == "5-10-5-10-5-10"
    with pytest.raises(ArchError, match="depth1=6 is not one of"):
        s.parse("6-10-5-10-5-10")
    assert s.coords(WRN_34_10) == {"d1": 5, "w1": 10, "d2": 5, "w2": 10, "d3": 5, "w3": 10}
    assert s.coord_schema == [(c, pa.int8()) for c in ("d1", "w1", "d2", "w2", "d3", "w3")]
    assert s.neighbours(WRN_34_10) == neighbours(WRN_34_10) and len(s.neighbours(WRN_34_10)) == 24
    assert s.encode(WRN_34_10).tolist() == one_hot(WRN_34_10) and s.encode(WRN_34_10).dtype == np.float32
    assert s.canonical(WRN_34_10) is WRN_34_10
    assert s.sample(5, seed=3) == s.sample(5, seed=3) != s.sample(5, seed=4)
    assert s.complexity(WRN_34_10, 16) == (46_160_474, s.complexity(WRN_34_10, 16)[1])
    assert s.references["wrn-34-10"] == WRN_34_10 and s.references["smallest"] == Arch(4, 8, 4, 8, 4, 8)
    assert s.references["largest"] == Arch(11, 16, 11, 16, 11, 16) == s.references["wrn-70-16"]
    idx = s.index()
    assert isinstance(idx, ArchIndex) and idx is ArchIndex.default() and idx.id_of(s.references["smallest"]) == 1


def test_wrn_model_and_closed_form_agree_at_the_preset_scale() -> None:
    for arch, scale in ((WRN_34_10, 1), (Arch(4, 16, 5, 8, 4, 10), 2)):
        assert count_module(SPACE.build_model(arch, scale)) == SPACE.complexity(arch, scale)
    assert SPACE.build_model(WRN_34_10, 1, num_classes=7).fc.out_features == 7


def _base5_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NAS tables as the benchmark has always built them: code = base-5 number of the choice indices;
    neighbours coordinate by coordinate, index + 1..4 (mod 5); one-hot 6 × 5."""
    powers = 5 ** np.arange(5, -1, -1)
    d = (np.arange(N_ARCHS)[:, None] // powers[None, :]) % 5
    nbrs = []
    for k in range(6):
        for step in range(1, 5):
            nd = d.copy()
            nd[:, k] = (nd[:, k] + step) % 5
            nbrs.append(nd @ powers)
    onehot = np.zeros((N_ARCHS, 30), dtype=np.float32)
    onehot[np.arange(N_ARCHS)[:, None], np.arange(6)[None, :] * 5 + d] = 1
    return d, np.stack(nbrs, axis=1), onehot


def test_wrn_nas_tables_equal_the_base5_tables() -> None:
    digits, nbrs, onehot = _base5_tables()
    assert [SPACE.code_of(a) for a in all_archs()[::997]] == list(range(0, N_ARCHS, 997))
    assert [choice_indices(SPACE.arch_of_code(c)) for c in (0, 1234, N_ARCHS - 1)] == [
        tuple(digits[c]) for c in (0, 1234, N_ARCHS - 1)]
    assert np.array_equal(SPACE.digits(np.arange(N_ARCHS)), digits)
    assert np.array_equal(SPACE.neighbour_table(), nbrs)
    assert np.array_equal(SPACE.encoding_table(), onehot)
    # the generic (non-vectorised) tables of the base class agree as sets of neighbours and as encodings
    generic = SearchSpace.neighbour_table(SPACE)
    assert [sorted(r) for r in generic[:50].tolist()] == [sorted(r) for r in SPACE.neighbour_table()[:50].tolist()]
    assert np.array_equal(SearchSpace.encoding_table(SPACE)[:50], SPACE.encoding_table()[:50])


def test_a_preset_space_section_restricts_the_choices() -> None:
    assert space_for({}) is SPACE and space_for({"space": {"depths": [4, 5, 7, 9, 11], "widths": list(WIDTHS)}}) is SPACE
    with pytest.raises(ConfigError, match=r"^space.widths is missing; expected increasing values of \[8, 10"):
        space_for({"space": {"depths": [4, 5, 7, 9, 11]}})
    sub = space_for({"space": {"name": "wrn", "depths": [4, 5], "widths": [8]}})
    assert isinstance(sub, WRNSpace) and sub.size == 8 and len(list(sub.enumerate())) == 8
    assert sub.neighbour_table().shape == (8, 3) and sub.encoding_table().shape == (8, 9)
    assert sorted(sub.code_of(n) for n in sub.neighbours(sub.references["smallest"])) == sorted(sub.neighbour_table()[0])
    assert [aid for aid, _ in sub.index()] == list(range(1, 9))
    with pytest.raises(ArchError, match="depth1=7 is not one of \\[4, 5\\]"):
        sub.parse("7-8-4-8-4-8")
    with pytest.raises(ConfigError, match=r"^space.depths is \[4, 6\]; expected increasing values of \[4, 5, 7"):
        space_for({"space": {"depths": [4, 6], "widths": [8]}})
    with pytest.raises(ConfigError, match=r"^space.cells is not a setting \(the keys of space 'wrn' are name, depths"):
        space_for({"space": {"cells": 3}})
    with pytest.raises(ConfigError, match=r"^space.name: unknown search space 'nb101'"):
        space_for({"space": {"name": "nb101"}})


def test_plugins_named_in_the_environment_load_at_lookup(tmp_path) -> None:
    (tmp_path / "my_space_plugin.py").write_text(
        "from nares.spaces import register_space\n"
        "from nares.spaces.wrn import WRNSpace\n"
        "class Tiny(WRNSpace):\n    name = 'tiny-wrn'\n"
        "register_space(Tiny([4], [8, 10]))\n"
    )
    code = "from nares.spaces import get_space; s = get_space('tiny-wrn'); print(s.name, s.size)"
    env = {"PYTHONPATH": str(tmp_path), "NARES_PLUGINS": "my_space_plugin", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert r.stdout.split() == ["tiny-wrn", "8"]
    env["NARES_PLUGINS"] = "no_such_plugin_module"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "NARES_PLUGINS plug-in 'no_such_plugin_module' cannot be loaded" in r.stderr


def test_the_preset_space_section_is_checked_by_the_space_at_load(tmp_path) -> None:
    import yaml

    from nares.config import REPO_ROOT, load_preset, load_settings, preset_hash

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    s = load_settings("tiny")
    assert (s.space.name, dict(s.space.settings)) == ("wrn", {"depths": (4, 5, 7, 9, 11), "widths": (8, 10, 12, 14, 16)})
    for section, needle in (({"depths": [4, 6], "widths": [8]}, r"presets\.tiny\.space\.depths is \[4, 6\]; expected"),
                            ({"name": "nb101"}, r"presets\.tiny\.space\.name: unknown search space 'nb101'")):
        params["presets"]["tiny"]["space"] = section
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        with pytest.raises(ConfigError, match=needle) as exc:
            load_preset("tiny", path)
        assert "\n" not in str(exc.value)
    params["presets"]["tiny"]["space"] = {"name": "wrn", "depths": [4, 5], "widths": [8]}  # the whole section
    path.write_text(yaml.safe_dump(params))
    cfg = load_preset("tiny", path)
    assert space_for(cfg).size == 8 and preset_hash(cfg) != preset_hash(load_preset("tiny"))
    params["presets"]["tiny"]["space"] = {"widths": [8]}  # no name: merged into full's section as any other
    path.write_text(yaml.safe_dump(params))
    assert space_for(load_preset("tiny", path)).size == 125
