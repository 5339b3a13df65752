"""Processes by PID: read a PID file, tell whether a PID runs, stop a process (or its group), quote the end
of its log."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

# a line stating an error: `ValueError: …`, `ray.exceptions.AuthenticationError: …`, Node's `Error: listen …`
_ERROR = re.compile(r"^([\w.]*(Error|Exception)|FATAL|fatal|error|ERROR)\b:?")


def read_pid(pid_file: Path) -> int | None:
    """The PID written in `pid_file` (its first word), or None when the file is missing or holds none."""
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True if `pid` runs. An exited child of this process is reaped and a zombie counts as gone; a process
    this user may not signal (PermissionError) counts as running."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def _gone(pid: int, timeout: float | None, poll_s: float = 0.05) -> bool:
    """Wait until `pid` no longer runs, at most `timeout` seconds (None: no limit); True if it ended."""
    end = None if timeout is None else time.monotonic() + timeout
    while pid_alive(pid):
        if end is not None and time.monotonic() >= end:
            return False
        time.sleep(poll_s)
    return True


def terminate(
    pid: int,
    grace_s: float,
    *,
    group: bool = False,
    sig: signal.Signals = signal.SIGTERM,
    kill_wait_s: float | None = None,
) -> None:
    """Send `sig` to `pid` (to its process group with `group=True`), SIGKILL it if it still runs after
    `grace_s`, then wait up to `kill_wait_s` (None: until it ends). With `group=True` a last SIGKILL goes to
    the group, for the children that outlived their leader."""
    send = os.killpg if group else os.kill
    for s, wait in ((sig, grace_s), (signal.SIGKILL, kill_wait_s)):
        try:
            send(pid, s)
        except ProcessLookupError:
            return
        if _gone(pid, wait):
            break
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def log_tail(log: Path, offset: int = 0, lines: int = 5, width: int = 200) -> str:
    """The last `lines` non-blank lines written to `log` after byte `offset`, on one line (`last lines: a | b`),
    each cut to `width` characters, led by the last line naming an error when they hold none (a Node or Python
    error dump ends in its details); for an error message about the process that wrote them."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(offset, fh.seek(0, os.SEEK_END) - 65536))   # the end of a long log is enough
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "its log cannot be read"
    every = [ln.strip()[:width] for ln in text.splitlines() if ln.strip()]
    tail = every[-lines:]
    named = [ln for ln in every[:-lines] if _ERROR.search(ln)]
    if named and not any(_ERROR.search(ln) for ln in tail):
        tail = [named[-1], "…", *tail]
    return f"last lines: {' | '.join(tail)}" if tail else "its log is empty"
