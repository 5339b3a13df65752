"""A real S3 server for tests: the embedded s3rver on a free loopback port, data in a temporary folder.

Use from a test module with `from tests.s3_fixtures import s3_server_fixture, s3_store_fixture`
(registers the fixtures `s3_server` and `s3_store` without shadowing warnings), or
`running_s3_server(path)` for a server of your own (e.g. one a test stops and restarts).
Every server started here is stopped by its PID when the fixture or the `with` block ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from factory.local_s3 import LocalS3Server
from factory.local_s3 import running as running_s3_server
from nares.store.objects import ObjectStore


@pytest.fixture(scope="session", name="s3_server")
def s3_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    """One real S3 server shared by the session's tests (each test gets its own bucket via `s3_store`)."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(name="s3_store")
def s3_store_fixture(s3_server: LocalS3Server) -> ObjectStore:
    """An ObjectStore on the shared server, in a fresh bucket of its own."""
    store = ObjectStore(s3_server.settings(bucket=f"t-{uuid.uuid4().hex[:12]}", backoff_s=0.05))
    store.ensure_bucket()
    return store


# Short aliases: `from tests.s3_fixtures import s3_server, s3_store` registers the same fixtures.
s3_server = s3_server_fixture
s3_store = s3_store_fixture
