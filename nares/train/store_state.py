"""A run folder's committed state in the object store, so that any worker on any node continues a run.

    <prefix>/runs/<preset>-seed<seed>/<arch>/resume.json   the pointer: epoch, done, {file: {sha256, size}}
    <prefix>/objects/sha256/<ab>/<sha256>                  each file it names, content-addressed and verified

`commit` uploads the files the new pointer names that the old one does not (verified, `ObjectStore.put_file`),
then replaces the pointer (the commit point: a reader sees the old pointer or the new one, each naming
objects already verified in the store), then retires the objects only the old pointer named (the previous
resume state, a superseded best checkpoint); the pointer lists them under `retire`, so that a commit
killed before its deletes has them finished by the next one. `restore` downloads the named files into a run folder, each
checked against its sha256 before it is renamed into place. The local run folder is a cache: a local resume
state wins only when it is ahead of the pointer (written atomically after an epoch whose upload was cut short),
or at the pointer's epoch with the very bytes the pointer names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nares.constants import CHECKPOINT_KINDS
from nares.io import sha256_file
from nares.train.checkpoints import DONE_FILE, STATE_FILE, RunError

POINTER = "resume.json"
POINTER_VERSION = 1
# Every file of a run folder that the pointer can name, in upload order (the completion marker after the
# checkpoints it lists; the records after the evaluations they are built from).
RUN_FILES = (STATE_FILE, *(f"checkpoints/{k}.pt" for k in CHECKPOINT_KINDS), DONE_FILE, "evaluations.jsonl",
             "record.jsonl")


@dataclass
class RunSync:
    """The pointer of one run (`key`: its full key prefix) and the files it names."""

    store: Any  # nares.store.objects.ObjectStore
    key: str
    pointer: dict[str, Any] | None = None  # the last pointer read or written
    _hashes: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # file -> (size, mtime_ns, sha256)

    @classmethod
    def for_dir(cls, store, run_dir: str | Path) -> RunSync:
        """The sync of a run folder `.../<preset>-seed<seed>/<arch>` (`nares.sweep.paths.run_dir`)."""
        run_dir = Path(run_dir)
        return cls(store, store.settings.key("runs", run_dir.parent.name, run_dir.name))

    @property
    def pointer_key(self) -> str:
        return f"{self.key}/{POINTER}"

    def read(self) -> dict[str, Any] | None:
        """The stored pointer (None when the run never committed an epoch)."""
        data = self.store.read_bytes(self.pointer_key)
        if data is None:
            self.pointer = None
            return None
        try:
            pointer = json.loads(data)
            if pointer.get("version") != POINTER_VERSION or not isinstance(pointer.get("files"), dict):
                raise ValueError
        except ValueError:
            raise RunError(f"resume pointer {self.pointer_key} is not a version-{POINTER_VERSION} pointer; "
                           "delete it to restart the run") from None
        self.pointer = pointer
        return pointer

    def _sha(self, out_dir: Path, rel: str) -> str:
        path = out_dir / rel
        st = path.stat()
        cached = self._hashes.get(rel)
        if cached is None or cached[:2] != (st.st_size, st.st_mtime_ns):
            cached = (st.st_size, st.st_mtime_ns, sha256_file(path))
            self._hashes[rel] = cached
        return cached[2]

    def commit(self, out_dir: str | Path, *, arch: str, preset_hash: str, epoch: int) -> dict[str, Any]:
        """Upload what is new in the run folder, point at it, retire what only the old pointer named.

        The first commit of a sync object reads the stored pointer (`read`, `prefer`, `restore` do too)."""
        out_dir = Path(out_dir)
        old = self.pointer if self.pointer is not None else (self.read() or {})
        files = {rel: {"sha256": self._sha(out_dir, rel), "size": (out_dir / rel).stat().st_size}
                 for rel in RUN_FILES if (out_dir / rel).is_file()}
        # a file the folder lacks keeps its stored copy (a folder holding part of a run never drops the rest),
        # except the resume state of a finished run
        for rel, f in old.get("files", {}).items():
            if rel not in files and not (rel == STATE_FILE and DONE_FILE in files):
                files[rel] = f
        old_shas = {f["sha256"] for f in old.get("files", {}).values()}
        for rel, f in files.items():
            if f["sha256"] not in old_shas:
                self.store.put_file(out_dir / rel, sha256=f["sha256"])
        kept = {f["sha256"] for f in files.values()}
        # retired after the pointer is replaced; named in it so that the next commit finishes a retirement
        # that a kill cut short
        retire = sorted((old_shas | set(old.get("retire", []))) - kept)
        pointer = {"version": POINTER_VERSION, "arch": arch, "preset_hash": preset_hash, "epoch": epoch,
                   "done": DONE_FILE in files, "files": files, "retire": retire}
        self.store.replace_bytes(json.dumps(pointer, indent=1, sort_keys=True).encode(), self.pointer_key)
        self.pointer = pointer
        for sha in retire:
            self.store.delete(self.store.content_key(sha))
        return pointer

    def restore(self, out_dir: str | Path, pointer: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Make the run folder hold every file the pointer names (downloading, verified, those that differ)."""
        pointer = pointer or self.pointer or self.read()
        if pointer is None:
            return None
        out_dir = Path(out_dir)
        for rel, f in pointer["files"].items():
            path = out_dir / rel
            if path.is_file() and path.stat().st_size == f["size"] and self._sha(out_dir, rel) == f["sha256"]:
                continue
            self.store.get_file(self.store.content_key(f["sha256"]), path)
        return pointer

    def check_run(self, pointer: dict[str, Any], arch: str, preset_hash: str) -> None:
        if pointer["arch"] != arch or pointer["preset_hash"] != preset_hash:
            raise RunError(f"resume pointer {self.pointer_key} is for {pointer['arch']} (preset hash "
                           f"{pointer['preset_hash']}), not {arch} (preset hash {preset_hash})")

    def prefer(self, out_dir: str | Path, local: dict[str, Any] | None, *, arch: str,
               preset_hash: str) -> bool:
        """Bring the run folder to the newest committed state; True when it was restored from the store.

        `local` is the folder's resume state (None: absent). It is kept when ahead of the pointer; at the
        pointer's epoch the files whose bytes differ from those named are replaced; behind it (or absent),
        the folder is restored from the store."""
        pointer = self.read()
        if pointer is None or pointer["done"]:
            return False  # nothing committed yet, or a finished run (`restore_done` handles those)
        self.check_run(pointer, arch, preset_hash)
        if local is not None and local["epoch"] > pointer["epoch"]:
            return False
        self.restore(out_dir, pointer)
        return True

    def restore_done(self, out_dir: str | Path, *, arch: str, preset_hash: str) -> bool:
        """Restore a finished run (its completion marker and checkpoints) named by the pointer; True if done."""
        pointer = self.read()
        if pointer is None or not pointer["done"]:
            return False
        self.check_run(pointer, arch, preset_hash)
        self.restore(out_dir, pointer)
        return True
