"""Atomic writes and exclusive folders: what a killed writer leaves behind is cleared, a live one is respected."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from nares.io import BusyError, atomic_write, exclusive_folder

HOLD = "import sys, time; from nares.io import exclusive_folder\n" \
       "with exclusive_folder(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"
HOLD_UNTIL_ENTER = "import sys; from nares.io import exclusive_folder\n" \
                   "with exclusive_folder(sys.argv[1]):\n    print('held', flush=True); sys.stdin.readline()"


def test_atomic_write_failure_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as fh:
        fh.write("new, half")
        raise RuntimeError("writer dies")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_exclusive_folder_clears_stale_partials_only(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / ".train_done.json.ab12.partial", tmp_path / "checkpoints" / ".last.pt.x9.partial"]
    kept = [tmp_path / "checkpoints" / "last.pt", tmp_path / "notes.partial"]  # not an atomic_write temp name
    for p in stale + kept:
        p.write_bytes(b"x")
    with exclusive_folder(tmp_path):
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in kept)


def test_a_live_holder_blocks_and_a_killed_one_does_not(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"held"
        with pytest.raises(BusyError, match=r"run is in use by another process"), exclusive_folder(folder):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.05)
    with exclusive_folder(folder) as held:  # the kernel dropped the dead holder's lock
        assert held == folder


def test_wait_true_waits_until_the_holder_lets_go(tmp_path):
    folder = tmp_path / "tables"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_UNTIL_ENTER, str(folder)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    held = threading.Event()

    def second_holder():
        with exclusive_folder(folder, wait=True):
            held.set()

    waiter = threading.Thread(target=second_holder, daemon=True)
    try:
        assert proc.stdout.readline().strip() == b"held"
        waiter.start()
        assert not held.wait(0.5)  # neither BusyError nor the lock: it waits
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        assert held.wait(10)  # the first holder let go: the second one gets the folder
    finally:
        proc.kill()
        proc.wait()
        if waiter.is_alive():
            waiter.join(10)
