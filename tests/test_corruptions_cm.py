"""Confusion and confidence of the CIFAR-10-C cells (`corruptions_cm`, PROTOCOL §7.2) on generated arrays in the
CIFAR-10-C layout: every matrix and scalar against a direct computation from the model's logits, the keys and
units of its rows, the settings, the cost model, the `jung` suite and the skip where the files are absent."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nares.config import load_preset
from nares.constants import CORRUPTIONS
from nares.errors import ConfigError
from nares.evaluations import EvalContext, get_evaluation, suite, suite_cost
from tests.small_models import small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")
PER = 8  # images per severity in the generated files
LIMIT = 5  # data.corruption_limit: the first 5 of each cell


def write_cifar10c_random(folder: Path, per: int = PER, seed: int = 0) -> dict[str, np.ndarray]:
    """The CIFAR-10-C layout (`<corruption>.npy`: 5·per uint8 images N×32×32×3, severity s in rows per·(s−1) ..
    per·s − 1; `labels.npy`: the per labels repeated once per severity) with random pixels, so that predictions
    differ between images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 10, per), 5).astype(np.uint8))  # one set per severity
    arrays = {}
    for name in CORRUPTIONS:
        arrays[name] = rng.integers(0, 256, (5 * per, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", arrays[name])
    arrays["labels"] = np.load(folder / "labels.npy")
    return arrays


@pytest.fixture
def c10c(tmp_path, monkeypatch):
    arrays = write_cifar10c_random(tmp_path / "cifar10-c")
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path))
    return arrays


def _cfg(corruptions=("fog", "gaussian_noise"), severities=(2, 5)) -> dict:
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["data"]["corruption_limit"] = LIMIT
    cfg["eval"]["batch_size"] = 2  # three batches per cell, the last one partial
    cfg["eval"]["corruptions_cm"] = {"corruptions": list(corruptions), "severities": list(severities)}
    return cfg


def _direct(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> dict:
    """Every statistic of one cell written out from the logits of one forward pass of all its images."""
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float() / 255
    y = torch.from_numpy(labels.astype(np.int64))
    with torch.no_grad():
        logits = model(x).float()
    p = torch.softmax(logits.double(), 1)
    pred = logits.argmax(1)
    c = 10
    cm = [[int(((y == i) & (pred == j)).sum()) for j in range(c)] for i in range(c)]

    def rows(index: torch.Tensor) -> list[list[float]]:
        return [(p[index == i].mean(0).tolist() if (index == i).any() else [math.nan] * c) for i in range(c)]

    ok = pred == y
    top = p.max(1).values
    return {"acc": float(ok.double().mean()), "cm": cm, "conf_true": rows(y), "conf_pred": rows(pred),
            "conf_correct": float(top[ok].mean()) if ok.any() else math.nan,
            "conf_incorrect": float(top[~ok].mean()) if (~ok).any() else math.nan,
            "loss": float(F.cross_entropy(logits, y))}


def _same(got, want) -> None:
    a = torch.tensor([[math.nan if v is None else v for v in r] for r in got], dtype=torch.float64)
    assert torch.allclose(a, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-7, equal_nan=True)  # float32 logits, batched


def test_cells_equal_a_direct_computation(c10c):
    cfg = _cfg()
    model = small_cnn(seed=3).eval()
    ev = get_evaluation("corruptions_cm")
    assert ev.unavailable(cfg) is None
    cell = ev.cell(EvalContext(cfg=cfg, model=model, device=torch.device("cpu")))
    assert list(cell) == ["fog", "gaussian_noise"] and all(list(v) == ["2", "5"] for v in cell.values())
    labels = c10c["labels"]
    for name in ("fog", "gaussian_noise"):
        for s in (2, 5):
            lo = PER * (s - 1)
            want = _direct(model, c10c[name][lo:lo + LIMIT], labels[lo:lo + LIMIT])
            got = cell[name][str(s)]
            assert got["n"] == LIMIT and got["cm"] == want["cm"] and sum(map(sum, got["cm"])) == LIMIT
            assert got["acc"] == pytest.approx(want["acc"], abs=1e-15)
            _same(got["conf_true"], want["conf_true"])
            _same(got["conf_pred"], want["conf_pred"])
            for m in ("conf_correct", "conf_incorrect"):
                g = math.nan if got[m] is None else got[m]
                assert (math.isnan(g) and math.isnan(want[m])) or g == pytest.approx(want[m], abs=1e-7)
            assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert any(cell["fog"]["2"]["cm"][i][j] for i in range(10) for j in range(10) if i != j)  # not all one class

    rows = {(v.metric, v.key): v.value for v in ev.values(cell)}
    assert len(rows) == 4 * (3 + 3 * 100 + 1)  # acc, conf_correct, conf_incorrect, 3 C×C matrices, loss per cell
    assert rows[("acc", "fog/2")] == pytest.approx(100 * cell["fog"]["2"]["acc"])  # percent in the results table
    assert rows[("cm", "gaussian_noise/5/3/7")] == cell["gaussian_noise"]["5"]["cm"][3][7]
    assert rows[("loss", "fog/5")] == cell["fog"]["5"]["loss"]
    conf = cell["fog"]["5"]["conf_pred"][2][9]
    assert (conf is None and math.isnan(rows[("conf_pred", "fog/5/2/9")])) or rows[("conf_pred", "fog/5/2/9")] == conf
    assert ev.units["cm"] == "count" and ev.units["acc"] == "percent"


def test_skipped_where_the_files_are_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path))
    assert get_evaluation("corruptions_cm").unavailable(_cfg()) == "CIFAR-10-C files are not present"
    assert get_evaluation("corruptions_cm").needs_corruptions and not get_evaluation("corruptions_cm").needs_test


def test_settings_are_checked():
    ev = get_evaluation("corruptions_cm")
    full = load_preset("full")
    s = ev.settings(full)
    assert s.corruptions == ("brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost",
                             "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur",
                             "pixelate", "shot_noise", "snow", "zoom_blur")  # Jung et al.'s 15 (PROTOCOL §7.2)
    assert set(s.corruptions) <= set(CORRUPTIONS) and s.severities == (1, 2, 3, 4, 5)
    with pytest.raises(ConfigError, match=r"^eval\.corruptions_cm\.corruptions is \['fog', 'smoke'\]; expected a "
                                          r"list of at least one item, each one of gaussian_noise, "):
        ev.settings(_cfg(corruptions=("fog", "smoke")))
    with pytest.raises(ConfigError, match=r"^eval\.corruptions_cm\.corruptions lists fog more than once; expected"):
        ev.settings(_cfg(corruptions=("fog", "snow", "fog")))
    with pytest.raises(ConfigError, match=r"^eval\.corruptions_cm\.severities is \[0, 2\]; expected"):
        ev.settings(_cfg(severities=(0, 2)))


def test_the_jung_suite_holds_it_in_place_of_corruptions():
    for preset in ("full", "tiny", "nb201-tiny"):
        members = suite(load_preset(preset), "jung")
        assert "corruptions_cm" in members and "corruptions" not in members


def test_cost_counts_forward_passes_of_the_corruption_cells():
    """15 corruptions × 5 severities × the images of one CIFAR-10-C cell, one forward pass (1/3) each."""
    ev = get_evaluation("corruptions_cm")
    full = load_preset("full")
    assert ev.cost(ev.settings(full), 10_000) == pytest.approx(15 * 5 * 10_000 / 3)
    tiny = load_preset("tiny")
    cfg = copy.deepcopy(tiny)
    cfg["eval"]["suites"] = {**cfg["eval"]["suites"], "cm": ["corruptions_cm"]}
    # a suite's cost model gives it the images of one corruption cell (tiny: 200), not the test images (256)
    assert suite_cost(cfg, {"test": 256, "corruptions": 200}, "cm") == pytest.approx(15 * 5 * 200 / 3)
