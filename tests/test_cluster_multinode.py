"""A real Ray cluster of one head and two worker nodes (separate `ray start` processes, each with its own temp
dir, NARES_HOME and `nares_worker` resource; no shared run folders): the sweep runs across the worker nodes.

- SIGTERM to the flow run process stops the actors after their current epoch (committed in the object store);
  a restarted run continues from there.
- One worker node killed mid-training (every process of it): the sweep completes, each architecture exactly once,
  the lost work is the epoch in progress, and the journal shows the architecture moving to the other node.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest

from nares.config import REPO_ROOT
from nares.constants import CHECKPOINT_KINDS
from nares.sweep.journal import Journal
from tests.flow_support import descendant_pids, isolated_flow_env
from tests.s3_fixtures import s3_server  # noqa: F401 - fixture
from tests.test_flows_kill_actor import small_params

pytestmark = [pytest.mark.cluster, pytest.mark.services, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
EPOCHS = 3


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class LocalCluster:
    """A head (no CPUs: the driver's side) and worker nodes, each `ray start --block` in its own session."""

    def __init__(self, root: Path):
        from factory.stack import ensure_ray_token, free_port_env
        from nares.ports import Ports
        from tasks.cluster import QUIET_ENV

        self.root = root
        self.short = Path(tempfile.mkdtemp(prefix="nr-", dir="/tmp"))  # Ray's socket paths must stay short
        self.ports = Ports.from_env(free_port_env())
        self.env = {**os.environ, **QUIET_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # several nodes, one host
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(ensure_ray_token())}
        for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
            self.env.pop(k, None)
        self.address = f"127.0.0.1:{self.ports.ray}"
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                                 "--temp-dir", str(self.short / name), *argv], cwd=REPO_ROOT,
                                env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, n_workers: int = 2) -> LocalCluster:
        self._start("head", ["--head", "--num-cpus", "0", "--include-dashboard", "false", *self.ports.ray_flags()])
        end = time.monotonic() + 120
        while not _port_open(self.ports.ray):
            assert time.monotonic() < end and self.procs["head"].poll() is None, self.log("head")
            time.sleep(0.5)
        for n in range(n_workers):
            self.start_worker(f"w{n}")
        self.wait_nodes(n_workers + 1)
        return self

    def start_worker(self, name: str) -> None:
        home = self.root / f"home-{name}"  # the node's own disk: run folders are a local cache
        self._start(name, ["--address", self.address, "--num-cpus", "1", "--resources", json.dumps({"nares_worker": 1})],
                    NARES_HOME=str(home))

    def home(self, name: str) -> Path:
        return self.root / f"home-{name}"

    def alive_nodes(self) -> set[str]:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def wait_nodes(self, n: int) -> None:
        import ray

        os.environ.update({k: self.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH",
                                                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")})
        if not ray.is_initialized():
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")  # Ray caches its auth mode and token: read them again from the variables just set
            AuthenticationTokenLoader.instance().reset_cache()
            ray.init(address=self.address, log_to_driver=False)
        end = time.monotonic() + 180
        while len(self.alive_nodes()) != n:
            assert time.monotonic() < end, f"{len(self.alive_nodes())} of {n} nodes alive; {self.log('w0')}"
            time.sleep(0.5)

    def kill_node(self, name: str) -> None:
        """SIGKILL every process of a node: its `ray start` group and the workers (each in a group of its own)."""
        proc = self.procs[name]
        pids = descendant_pids(proc.pid) | {proc.pid}
        for pid in sorted(pids):
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        proc.wait()

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for name in [n for n in self.procs if n != "head"] + ["head"]:
            if self.procs[name].poll() is None:
                self.kill_node(name)
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
            os.environ.pop(k, None)
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")  # forget the cached token mode: later local clusters in this process run without it
        AuthenticationTokenLoader.instance().reset_cache()
        shutil.rmtree(self.short, ignore_errors=True)


@pytest.fixture
def cluster_env(tmp_path, monkeypatch, s3_server, data_dir):  # noqa: F811 - fixture argument
    p = tmp_path / "params.yaml"
    small_params(p)
    import yaml

    params = yaml.safe_load(p.read_text())
    params["presets"]["tiny"]["sweep"] = {"queue_depth": 1, "max_actors": 2, "progress_every_s": 2}
    p.write_text(yaml.safe_dump(params))
    for env in isolated_flow_env(tmp_path, monkeypatch, NARES_DATA_DIR=data_dir, NARES_TABLES=tmp_path / "tables",
                                 NARES_S3_ENDPOINT=s3_server.endpoint_url, NARES_RELEASES=tmp_path / "releases",
                                 NARES_S3_BUCKET=f"c-{uuid.uuid4().hex[:10]}", OMP_NUM_THREADS=1):
        cluster = LocalCluster(tmp_path).start()
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        try:
            yield env, cluster
        finally:
            cluster.stop()


def _store():
    from nares.store.objects import ObjectStore

    store = ObjectStore.from_settings()
    store.ensure_bucket()
    return store


def _pointer(store, arch: str) -> dict | None:
    from nares.train.store_state import RunSync

    return RunSync(store, store.settings.key("runs", "tiny-seed0", arch)).read()


def _training_on(home: Path) -> list[str]:
    """Architectures with a committed epoch but not finished in a node's run folders."""
    runs = home / "runs" / "tiny-seed0"
    return [d.name for d in runs.glob("*-*") if (d / "state" / "state.pt").exists() and not (d / "train_done.json").exists()]


def _check_tables(ids: list[int]) -> None:
    from nares.store.tables import read_tables
    from nares.sweep.paths import default_tables_root

    t = read_tables(default_tables_root("tiny", 0), ["manifest", "runs", "test_metrics"])
    for aid in ids:
        kinds = t["manifest"].filter(pc.equal(t["manifest"]["arch_id"], aid)).column("kind").to_pylist()
        assert sorted(kinds) == sorted(CHECKPOINT_KINDS)                               # four checkpoints
        assert t["runs"].filter(pc.equal(t["runs"]["arch_id"], aid)).num_rows == 1     # one record
    assert sorted(t["test_metrics"].column("arch_id").to_pylist()) == sorted(ids)


def test_sigterm_to_the_flow_run_stops_after_the_epoch_and_a_new_run_continues(cluster_env):
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.spaces.wrn import ArchIndex
    from nares.sweep.paths import journal_path

    _, cluster = cluster_env
    store = _store()
    index = ArchIndex.default()
    archs = {i: str(index.arch_of(i)) for i in (4, 5)}
    with prefect_test_harness(server_startup_timeout=120):
        code = "from flows.nares_flow import nares; nares(action='sweep', preset='tiny', archs='ids:4-5')"
        run = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()})
        end = time.monotonic() + 300
        while not any((p := _pointer(store, a)) and not p["done"] for a in archs.values()):
            assert run.poll() is None and time.monotonic() < end, run.stderr.read().decode()[-2000:] if run.stderr else ""
            time.sleep(0.1)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=300)
        assert run.returncode != 0 and b"stopped by SIGTERM after the current epoch" in err, err.decode()[-2000:]
        events = list(Journal(journal_path("tiny", 0)).events())
        stopped = {e["arch_id"] for e in events if e["event"] == "stopped"}
        assert stopped and not [e for e in events if e["event"] in ("done", "failed", "retry")]
        committed = {}
        for aid in stopped:
            p = _pointer(store, archs[aid])
            assert p is not None and not p["done"] and p["epoch"] < EPOCHS - 1
            committed[aid] = p["epoch"]
            node_state = [h / "runs" / "tiny-seed0" / archs[aid] / "state" / "state.pt" for h in
                          (cluster.home("w0"), cluster.home("w1"))]
            assert any(s.exists() for s in node_state)  # the node's local copy of the committed epoch
        time.sleep(3)  # nothing trains on after the run ended (the actors are gone)
        assert {aid: _pointer(store, archs[aid])["epoch"] for aid in stopped} == committed

        second = nares(action="sweep", preset="tiny", archs="ids:4-5")["seed0"]
        assert (second["done"], second["failed"]) == (2, 0)
        done = {e["arch_id"]: e for e in Journal(journal_path("tiny", 0)).events() if e["event"] == "done"}
        for aid, epoch in committed.items():
            assert done[aid]["resumed_from"] == epoch and done[aid]["epochs_run"] == EPOCHS - 1 - epoch
        _check_tables([4, 5])


def test_killed_worker_node_moves_its_architecture_to_the_other_node(cluster_env):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.spaces.wrn import ArchIndex
    from nares.sweep.paths import journal_path

    _, cluster = cluster_env
    store = _store()
    index = ArchIndex.default()
    killed: dict = {}

    def kill_when_an_epoch_is_committed() -> None:
        end = time.monotonic() + 400
        while time.monotonic() < end:
            busy = [a for a in _training_on(cluster.home("w0")) if (p := _pointer(store, a)) and not p["done"]]
            if busy:
                cluster.kill_node("w0")
                killed.update(arch=busy[0], epoch=_pointer(store, busy[0])["epoch"])  # read once the node is gone
                return
            time.sleep(0.05)

    import threading

    killer = threading.Thread(target=kill_when_an_epoch_is_committed, daemon=True)
    killer.start()
    with prefect_test_harness(server_startup_timeout=120):
        first = nares(action="sweep", preset="tiny", archs="ids:1-3")["seed0"]
    killer.join(timeout=5)
    assert killed, f"no architecture was seen training on node w0; {cluster.log('w0')}"
    assert (first["done"], first["failed"]) == (3, 0)

    events = list(Journal(journal_path("tiny", 0)).events())
    ids = {str(index.arch_of(i)): i for i in (1, 2, 3)}
    aid = ids[killed["arch"]]
    assert sorted(e["arch_id"] for e in events if e["event"] == "done") == [1, 2, 3]   # each exactly once
    lost = [e for e in events if e["event"] in ("retry", "interrupted")]   # interrupted: Ray said "restarting"
    assert [e["arch_id"] for e in lost] == [aid]
    done = next(e for e in events if e["event"] == "done" and e["arch_id"] == aid)
    assert lost[0]["node"] != done["node"]                                   # the move, node to node
    assert lost[0]["node"] not in cluster.alive_nodes() and done["node"] in cluster.alive_nodes()
    assert done["resumed_from"] == killed["epoch"]                           # lost: only the epoch in progress
    assert done["epochs_run"] == EPOCHS - 1 - killed["epoch"]
    assert not (cluster.home("w1") / "runs" / "tiny-seed0" / killed["arch"] / "state").exists()
    _check_tables([1, 2, 3])
