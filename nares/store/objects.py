"""The object store: content-addressed files on S3 (boto3), uploaded atomically and verified.

`put_file` uploads to a private staging key (multipart above `multipart_threshold`), reads the staged
object back and checks its sha256, then copies it server-side to its final key
`<prefix>/objects/sha256/<ab>/<sha256>` and checks that key's size and recorded digest. A final key
therefore never shows a partial object, even when the server stops mid-upload; the whole cycle is
retried with exponential backoff. `get_file` downloads to a temporary file, checks the sha256 and
only then renames it into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from nares.errors import NaresError
from nares.io import sha256_file
from nares.store.settings import StoreSettings

STAGING_ANCHOR = ".keep"  # kept in staging/ so that the folder never empties (see `_ensure_staging_anchor`)
SHA_META = "sha256"  # user metadata on every object this store writes
SIZE_META = "size"


class StoreError(NaresError):
    """An object store failure: unreachable server, missing or corrupt object."""


class CorruptObjectError(StoreError):
    """An object whose bytes do not match its sha256."""


def _is_sha256(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


class ObjectStore:
    """Files in one bucket under one key prefix."""

    def __init__(self, settings: StoreSettings):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.settings = settings
        self._anchored = False
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            config=Config(
                retries={"max_attempts": settings.max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=60,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.multipart_chunksize,
            max_concurrency=4,
            use_threads=True,
        )

    @classmethod
    def from_settings(cls, settings: StoreSettings | None = None) -> ObjectStore:
        """The store described by `settings` (default: the environment, see `nares.store.settings`)."""
        return cls(settings or StoreSettings.from_env())

    def __repr__(self) -> str:
        return f"ObjectStore({self.settings!r})"

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    # ------------------------------------------------------------ errors

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            raise StoreError(
                f"{what}: the S3 server answered {code} ({self.settings.endpoint_url}, bucket {self.bucket})"
            ) from None
        except BotoCoreError as e:
            raise StoreError(f"{what}: {type(e).__name__} talking to {self.settings.endpoint_url}") from None

    # ------------------------------------------------------------ bucket

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        with self._errors(f"creating bucket {self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                self._client.create_bucket(Bucket=self.bucket)

    # ------------------------------------------------------------ keys

    def content_key(self, sha256: str) -> str:
        """The final key of a file whose sha256 is `sha256`."""
        return self.settings.key("objects", "sha256", sha256[:2], sha256)

    def head(self, key: str) -> dict | None:
        """Size and recorded sha256 of `key`, or None when absent."""
        from botocore.exceptions import ClientError

        with self._errors(f"looking up {key}"):
            try:
                r = self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        meta = r.get("Metadata", {})
        return {
            "size": int(r["ContentLength"]),
            "sha256": meta.get(SHA_META),
            "recorded_size": meta.get(SIZE_META),
        }

    def exists(self, key: str) -> bool:
        """True when `key` holds a complete object: its recorded digest and size match what is stored."""
        h = self.head(key)
        if h is None or h["sha256"] is None or h["recorded_size"] is None:
            return False
        if h["size"] != int(h["recorded_size"]):
            return False
        digest = key.rsplit("/", 1)[-1]
        return h["sha256"] == digest if _is_sha256(digest) else True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a full key prefix, e.g. `settings.key("releases")`)."""
        keys: list[str] = []
        with self._errors(f"listing {prefix}"):
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(keys)

    # ------------------------------------------------------------ upload

    def put_file(
        self, path: str | Path, *, key: str | None = None, sha256: str | None = None
    ) -> tuple[str, str, int]:
        """Upload `path` atomically and verified; returns (key, sha256, size).

        The key defaults to the content address; a content-addressed object already stored intact is not
        uploaded again. An explicit `key` that already holds another content is refused (keys are immutable).
        """
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"cannot upload {path}: no such file")
        digest = sha256 or sha256_file(path)
        size = path.stat().st_size
        final = key or self.content_key(digest)
        existing = self.head(final)
        if existing is not None and existing["sha256"] == digest and existing["size"] == size:
            return final, digest, size
        if existing is not None and key is not None and existing["sha256"] not in (None, digest):
            raise StoreError(
                f"key {final} already holds other content (sha256 {existing['sha256'][:12]}…); keys are immutable"
            )
        self._retrying(f"uploading {path.name}", lambda: self._put_once(path, final, digest, size))
        return final, digest, size

    def _ensure_staging_anchor(self) -> None:
        """Keep one permanent object in `staging/`: s3rver removes a folder that a delete leaves empty, which
        races with (and crashes on) a concurrent upload into that folder."""
        if self._anchored:
            return
        key = self.settings.key("staging", STAGING_ANCHOR)
        if self.head(key) is None:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=b"")
        self._anchored = True

    def _put_once(self, path: Path, final: str, digest: str, size: int) -> None:
        self._ensure_staging_anchor()
        staging = self.settings.key("staging", f"{uuid.uuid4().hex}-{digest[:16]}")
        meta = {"Metadata": {SHA_META: digest, SIZE_META: str(size)}}
        try:
            self._client.upload_file(str(path), self.bucket, staging, ExtraArgs=meta, Config=self._transfer)
            got = self._sha256_of(staging)
            if got != digest:
                raise CorruptObjectError(
                    f"staged upload of {path.name} has sha256 {got[:12]}…, expected {digest[:12]}…"
                )
            self._client.copy_object(
                Bucket=self.bucket,
                Key=final,
                CopySource={"Bucket": self.bucket, "Key": staging},
                MetadataDirective="REPLACE",
                **meta,
            )
            h = self.head(final)
            if h is None or h["size"] != size or h["sha256"] != digest:
                raise CorruptObjectError(f"{final} does not hold the {size} bytes just uploaded")
        finally:
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.bucket, Key=staging)

    def _retrying(self, what: str, fn) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        pause = self.settings.backoff_s
        for attempt in range(1, self.settings.put_attempts + 1):
            try:
                fn()
                return
            except (Boto3Error, BotoCoreError, ClientError, StoreError, OSError) as e:
                if attempt == self.settings.put_attempts:
                    if isinstance(e, StoreError):
                        raise
                    raise StoreError(
                        f"{what} failed after {attempt} attempts ({type(e).__name__}) "
                        f"talking to {self.settings.endpoint_url}"
                    ) from None
                time.sleep(pause)
                pause *= 2

    def put_bytes(self, data: bytes, key: str) -> tuple[str, str, int]:
        """Upload small in-memory content to `key` (same atomic, verified path as `put_file`)."""
        with tempfile.NamedTemporaryFile(prefix="nares-put-", delete=False) as fh:
            fh.write(data)
        try:
            return self.put_file(fh.name, key=key, sha256=hashlib.sha256(data).hexdigest())
        finally:
            os.unlink(fh.name)

    # ------------------------------------------------------------ download

    def _sha256_of(self, key: str) -> str:
        h = hashlib.sha256()
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(1 << 20):
            h.update(chunk)
        return h.hexdigest()

    def verify(self, key: str, sha256: str) -> bool:
        """Read the whole object back and compare its sha256 (False also when absent)."""
        from botocore.exceptions import ClientError

        with self._errors(f"verifying {key}"):
            try:
                return self._sha256_of(key) == sha256
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def get_file(self, key: str, dest: str | Path, sha256: str | None = None) -> Path:
        """Download `key` to `dest`, check its sha256 (given, else the recorded one), rename into place."""
        self.download(key, dest, sha256)
        return Path(dest)

    def download(self, key: str, dest: str | Path, sha256: str | None = None) -> str:
        """`get_file`, returning the sha256 of the file written (so that a caller need not hash it again)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        expected = sha256
        if expected is None:
            h = self.head(key)
            if h is None:
                raise StoreError(f"{key} is not in bucket {self.bucket}")
            expected = h["sha256"]
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        os.close(fd)
        try:
            with self._errors(f"downloading {key}"):
                self._client.download_file(self.bucket, key, tmp, Config=self._transfer)
            got = sha256_file(tmp)
            if expected is not None and got != expected:
                raise CorruptObjectError(f"{key} is corrupt: sha256 {got[:12]}… instead of {expected[:12]}…")
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return got

    def get_bytes(self, key: str) -> bytes:
        with self._errors(f"reading {key}"):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def clean_staging(self, older_than_s: float = 3600.0) -> int:
        """Delete staging objects left by interrupted uploads (older than `older_than_s`); returns how many."""
        import datetime as dt

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)
        n = 0
        with self._errors("cleaning staging uploads"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.settings.key("staging") + "/"
            )
            for page in pages:
                for o in page.get("Contents", []):
                    if o["LastModified"] < cutoff and not o["Key"].endswith("/" + STAGING_ANCHOR):
                        self._client.delete_object(Bucket=self.bucket, Key=o["Key"])
                        n += 1
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):  # not every S3 server lists multipart uploads
            for up in self._client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
                if up["Initiated"] < cutoff:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                    )
        return n
