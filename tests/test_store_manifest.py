"""Manifest queries of the store: where each checkpoint is, and fetching one into a run folder."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nares.errors import DataError
from nares.store.manifest import checkpoint_objects, ensure_checkpoint
from nares.store.tables import SCHEMAS, write_tables
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)


def _manifest(rows):
    cols = ("arch_id", "kind", "key", "sha256", "size", "epoch")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}, schema=SCHEMAS["manifest"])


def test_checkpoint_objects_reads_every_row(tmp_path):
    write_tables({"manifest": _manifest([(3, "best", "k/3b", "aa", 10, 5), (3, "last", "k/3l", "bb", 11, 9),
                                         (7, "best", "k/7b", "cc", 12, 2)])}, tmp_path)
    assert checkpoint_objects(tmp_path) == {(3, "best"): ("k/3b", "aa"), (3, "last"): ("k/3l", "bb"),
                                            (7, "best"): ("k/7b", "cc")}
    assert checkpoint_objects(tmp_path / "none") == {}


def test_ensure_checkpoint_fetches_only_what_is_missing(tmp_path, s3_store):
    src = tmp_path / "best.pt"
    src.write_bytes(b"checkpoint bytes")
    key, sha, _ = s3_store.put_file(src)
    calls = []

    def objects():
        calls.append(1)
        return {(3, "best"): (key, sha)}

    run = tmp_path / "run"
    dest = run / "checkpoints" / "best.pt"
    assert ensure_checkpoint(s3_store, objects, 3, "best", run) == dest and dest.read_bytes() == b"checkpoint bytes"
    dest.write_bytes(b"local")                                   # present: no lookup, no fetch
    assert ensure_checkpoint(s3_store, objects, 3, "best", run) == dest and dest.read_bytes() == b"local"
    assert calls == [1]
    with pytest.raises(DataError, match="^no `last` checkpoint of arch id 3 in the manifest$"):
        ensure_checkpoint(s3_store, objects, 3, "last", run)
