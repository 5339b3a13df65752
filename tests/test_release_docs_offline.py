"""The validation report kept in a release is readable offline: no remote resource, and it renders styled."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from nares.store.tables import records_to_tables
from nares.synthetic import synthetic_manifest, synthetic_records
from nares.validation import validate_tables

REMOTE = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}|@import|<script|<link|<iframe|<img", re.I)
FAIL_RED = (200, 35, 51)  # the FAILED badge (#c82333): drawn only when the inline stylesheet applies


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of tables with one wrong arch_id (so failures are rendered too)."""
    t = records_to_tables(synthetic_records(12, seed=3, epochs=6))
    t["manifest"] = synthetic_manifest(t["architectures"].column("arch_id").to_pylist())
    rows = t["architectures"].to_pylist()
    rows[0]["arch_id"] = 15_625 if rows[0]["arch_id"] != 15_625 else 15_624
    t["architectures"] = pa.Table.from_pylist(rows, schema=t["architectures"].schema)
    folder = tmp_path_factory.mktemp("report") / "validation"
    r = validate_tables(t, epochs=6, verify_checkpoints="none", report_dir=folder)
    assert not r.success
    return folder


def test_the_report_references_no_remote_resource(report: Path):
    files = sorted(p for p in report.rglob("*") if p.is_file())
    assert {p.relative_to(report).as_posix() for p in files} >= {"index.html", "summary.json"}
    html = [p for p in files if p.suffix in (".html", ".htm", ".css", ".js")]
    assert [p.name for p in html] == ["index.html"]
    page = html[0].read_text(encoding="utf-8")
    assert REMOTE.findall(page) == []
    # The content is in the HTML itself (no list filled in by a script): every table and the failures.
    for name in ("architectures", "runs", "history", "test_metrics", "corruptions", "ledger", "manifest"):
        assert f"id='{name}'" in page
    assert "expect_column_pair_values_to_be_equal" in page and "arch_id_in_space" in page and "FAILED" in page
    assert len(list((report / "results").glob("*.json"))) == 7


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_report_renders_styled_in_a_headless_browser(report: Path, tmp_path: Path):
    import numpy as np
    from PIL import Image

    shot = tmp_path / "report.png"
    out = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-extensions", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,1400", f"--screenshot={shot}", (report / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    non_white = float((px.min(axis=1) < 235).mean())
    red = int((np.abs(px - FAIL_RED).max(axis=1) <= 12).sum())
    header_grey = int((px == (240, 243, 246)).all(axis=1).sum())  # table headers (#f0f3f6)
    assert 0.03 < non_white < 0.9, non_white  # neither blank nor a solid block
    assert red > 500 and header_grey > 2000, (red, header_grey)  # styled: badges and table headers drawn
