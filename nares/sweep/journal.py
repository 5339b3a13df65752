"""The sweep journal: one JSON line per event (start, done, failed, interrupted) of each architecture.

It is the sweep's own cost ledger and the record of failures: a `done` event carries `train_seconds` and
`eval_seconds`, the device-seconds of each phase (wall time the worker held the device, any device: a CPU
worker's count too) and `device`, the device's name, the convention of the store's ledger;
the store's manifest and ledger stay the truth about what is complete. Lines are appended and fsynced
by a single writer (the sweep driver); a torn last line (crash mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


def _cost(events: Iterable[dict]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for e in events:
        if e.get("event") == "done":
            c = out.setdefault(e["arch_id"], {"train": 0.0, "eval": 0.0})
            c["train"] += float(e.get("train_seconds", 0.0))
            c["eval"] += float(e.get("eval_seconds", 0.0))
    return out


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def record(self, event: str, **fields) -> dict:
        row = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return row

    def events(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path) as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def done_ids(self) -> set[int]:
        return {e["arch_id"] for e in self.events() if e.get("event") == "done"}

    def cost(self) -> dict[int, dict[str, float]]:
        """Device-seconds per architecture and phase (`train`, `eval`), summed over its `done` events."""
        return _cost(self.events())

    def summary(self) -> dict:
        """Last status per architecture, counted: done / failed / running (started, not finished)."""
        events = list(self.events())  # the journal is read once
        last: dict[int, str] = {}
        for e in events:
            if "arch_id" in e:
                last[e["arch_id"]] = e["event"]
        counts = {"done": 0, "failed": 0, "running": 0, "retrying": 0}
        for ev in last.values():
            key = {"done": "done", "failed": "failed", "start": "running"}.get(ev, "retrying")
            counts[key] += 1
        seconds = _cost(events)
        counts["device_hours"] = round(sum(c["train"] + c["eval"] for c in seconds.values()) / 3600, 6)
        return counts
