"""The object store: content-addressed files on S3 (boto3), uploaded atomically and verified.

`put_file` uploads to a private staging key (multipart above `multipart_threshold`), reads the staged
object back and checks its sha256, then copies it server-side to its final key
`<prefix>/objects/sha256/<ab>/<sha256>` and checks that key's size and recorded digest. A final key
therefore never shows a partial object, even when the server stops mid-upload; the whole cycle is
retried with exponential backoff. `get_file` downloads to a temporary file, checks the sha256 and
only then renames it into place. A content key is its own checksum: an object already stored under it is
read back before it is trusted, and a download from it is checked against the key whatever its metadata says.

A server that refuses connections is reported at once (`StoreUnreachable`), not retried: retries with
backoff are kept for transient failures (5xx, slow-down, connections dropped or timed out mid-transfer).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nares.errors import NaresError
from nares.io import sha256_file
from nares.store.settings import StoreSettings

STAGING_ANCHOR = ".keep"  # kept in staging/ so that the folder never empties (see `_ensure_staging_anchor`)
SHA_META = "sha256"  # user metadata on every object this store writes
SIZE_META = "size"
MD5_META = "md5"  # on checkpoints: the digest DVC addresses them by (`nares.store.ingest.store_checkpoint`)


class StoreError(NaresError):
    """An object store failure: unreachable server, missing or corrupt object."""


class CorruptObjectError(StoreError):
    """An object whose bytes do not match its sha256."""


class StoreUnreachable(StoreError):
    """Nothing accepts connections at the endpoint: reported at once, never retried."""


MISSING = ("404", "NoSuchKey", "NotFound")  # the error codes of an absent object


def _code(e) -> str:
    """The error code of a botocore ClientError."""
    return e.response.get("Error", {}).get("Code", "?")


def _is_sha256(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def content_sha(key: str) -> str | None:
    """The sha256 a content key (`…objects/sha256/<ab>/<sha256>`) names, or None for any other key."""
    parts = key.split("/")
    if len(parts) >= 4 and parts[-4:-2] == ["objects", "sha256"] and _is_sha256(parts[-1]):
        return parts[-1] if parts[-2] == parts[-1][:2] else None
    return None


def _refused(exc: BaseException | None) -> bool:
    """True when `exc` (or what caused it, through botocore's wrapping) is a refused TCP connection."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionRefusedError):
            return True
        seen.add(id(exc))
        wrapped = getattr(exc, "kwargs", None)
        inner = wrapped.get("error") if isinstance(wrapped, dict) else None
        exc = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    return False


def _no_retry_when_refused(caught_exception: BaseException | None = None, **_) -> bool | None:
    """A botocore `needs-retry` handler, run before the standard one: False (do not retry) on a refused
    connection, None (let the standard policy decide) otherwise."""
    return False if _refused(caught_exception) else None


@dataclass(frozen=True)
class Cleanup:
    """What `clean_staging` removed; `uploads_unchecked` says why multipart uploads could not be listed."""

    objects: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    uploads_unchecked: str | None = None


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
        self._client.meta.events.register_first("needs-retry.s3", _no_retry_when_refused)
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

    def _unreachable(self, what: str) -> StoreUnreachable:
        return StoreUnreachable(
            f"{what}: nothing accepts connections at {self.settings.endpoint_url} (connection refused); "
            "start the server (`nares store server start`) or set NARES_S3_ENDPOINT"
        )

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except OSError as e:
            if _refused(e):
                raise self._unreachable(what) from None
            raise
        except ClientError as e:
            raise StoreError(
                f"{what}: the S3 server answered {_code(e)} ({self.settings.endpoint_url}, bucket {self.bucket})"
            ) from None
        except BotoCoreError as e:
            if _refused(e):
                raise self._unreachable(what) from None
            raise StoreError(f"{what}: {type(e).__name__} talking to {self.settings.endpoint_url}") from None

    # ------------------------------------------------------------ bucket

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        with self._errors(f"creating bucket {self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if _code(e) not in (*MISSING, "NoSuchBucket"):
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
                if _code(e) in MISSING:
                    return None
                raise
        meta = r.get("Metadata", {})
        return {
            "size": int(r["ContentLength"]),
            "sha256": meta.get(SHA_META),
            "recorded_size": meta.get(SIZE_META),
            "md5": meta.get(MD5_META),
        }

    def exists(self, key: str) -> bool:
        """True when `key` holds a complete object: its recorded digest and size match what is stored."""
        h = self.head(key)
        if h is None or h["sha256"] is None or h["recorded_size"] is None:
            return False
        if h["size"] != int(h["recorded_size"]):
            return False
        digest = content_sha(key)
        return h["sha256"] == digest if digest else True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a full key prefix, e.g. `settings.key("releases")`)."""
        keys: list[str] = []
        with self._errors(f"listing {prefix or 'bucket ' + self.bucket}"):
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

        The key defaults to the content address. An object already stored under the key with this size and
        digest is read back and hashed: kept when intact (not uploaded again), replaced when corrupt. An
        explicit `key` that already holds another content is refused (keys are immutable).
        """
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"cannot upload {path}: no such file")
        digest = sha256 or sha256_file(path)
        size = path.stat().st_size
        final = key or self.content_key(digest)
        named = content_sha(final)
        if named is not None and named != digest:
            raise StoreError(
                f"cannot upload {path.name} to {final}: its sha256 is {digest[:12]}…, not the key's"
            )
        existing = self.head(final)
        if existing is not None and existing["size"] == size and existing["sha256"] == digest:
            if self.verify(final, digest):
                return final, digest, size
            existing = None  # claims this content but holds other bytes: replaced below
        if existing is not None and named is None and existing["sha256"] not in (None, digest):
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
                if isinstance(e, StoreUnreachable):
                    raise
                if _refused(e):
                    raise self._unreachable(what) from None
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
                if _code(e) in MISSING:
                    return False
                raise

    def get_file(self, key: str, dest: str | Path, sha256: str | None = None) -> Path:
        """Download `key` to `dest`, check its sha256, rename into place.

        The sha256 checked is the one a content key names, else `sha256`, else the one recorded at upload;
        a key with none of these is refused (nothing is written unverified)."""
        self.download(key, dest, sha256)
        return Path(dest)

    def download(self, key: str, dest: str | Path, sha256: str | None = None) -> str:
        """`get_file`, returning the sha256 of the file written (so that a caller need not hash it again)."""
        from botocore.exceptions import ClientError

        dest = Path(dest)
        expected = content_sha(key)
        if expected is not None and sha256 is not None and sha256 != expected:
            raise StoreError(f"{key} is content-addressed: its sha256 is the key's, not {sha256[:12]}…")
        expected = expected or sha256
        if expected is None:
            h = self.head(key)
            if h is None:
                raise StoreError(f"{key} is not in bucket {self.bucket}")
            expected = h["sha256"]
            if expected is None:
                raise StoreError(f"{key} records no sha256 and cannot be verified; give the expected one")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        os.close(fd)
        try:
            with self._errors(f"downloading {key}"):
                try:
                    self._client.download_file(self.bucket, key, tmp, Config=self._transfer)
                except ClientError as e:
                    if _code(e) in MISSING:
                        raise StoreError(f"{key} is not in bucket {self.bucket}") from None
                    raise
            got = sha256_file(tmp)
            if got != expected:
                raise CorruptObjectError(f"{key} is corrupt: sha256 {got[:12]}… instead of {expected[:12]}…")
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return got

    def get_bytes(self, key: str) -> bytes:
        with self._errors(f"reading {key}"):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def clean_staging(self, older_than_s: float = 3600.0) -> Cleanup:
        """Delete what interrupted uploads left in `staging/` (older than `older_than_s`): staged objects,
        and multipart uploads (aborted, which frees their parts) where the server lists them.

        A server that cannot list multipart uploads is named in `uploads_unchecked`, never counted as
        "nothing to clean" (for the embedded server, `factory.local_s3.clean_staging` removes
        its parts from disk)."""
        import datetime as dt

        from botocore.exceptions import ClientError

        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)
        prefix = self.settings.key("staging") + "/"
        objects = uploads = 0
        with self._errors("cleaning staging uploads"):
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for o in page.get("Contents", []):
                    if o["LastModified"] < cutoff and not o["Key"].endswith("/" + STAGING_ANCHOR):
                        self._client.delete_object(Bucket=self.bucket, Key=o["Key"])
                        objects += 1
            try:
                pages = self._client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                for page in pages:
                    for up in page.get("Uploads", []):
                        if up["Initiated"] < cutoff:
                            self._client.abort_multipart_upload(
                                Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                            )
                            uploads += 1
            except ClientError as e:
                if _code(e) not in ("NotImplemented", "MethodNotAllowed", "501", "405"):
                    raise
                why = f"the S3 server at {self.settings.endpoint_url} cannot list multipart uploads ({_code(e)})"
                return Cleanup(objects, uploads, uploads_unchecked=why)
        return Cleanup(objects, uploads)

    # ------------------------------------------------------------ mutable pointers, deletes, server-side copies

    def replace_bytes(self, data: bytes, key: str) -> str:
        """Write small content to a mutable (non-content) `key`, replacing what it held; returns its sha256.

        Same staged, verified path as `put_file`; the final copy replaces the object at once, so a reader sees
        the old content or the new, never a mix."""
        if content_sha(key) is not None:
            raise StoreError(f"{key} is a content key: it is written with put_file, never replaced")
        digest = hashlib.sha256(data).hexdigest()
        with tempfile.NamedTemporaryFile(prefix="nares-put-", delete=False) as fh:
            fh.write(data)
        try:
            self._retrying(f"writing {key}", lambda: self._put_once(Path(fh.name), key, digest, len(data)))
        finally:
            os.unlink(fh.name)
        return digest

    def read_bytes(self, key: str) -> bytes | None:
        """The content of `key` checked against the sha256 recorded at upload, or None when absent."""
        from botocore.exceptions import ClientError

        with self._errors(f"reading {key}"):
            try:
                r = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if _code(e) in MISSING:
                    return None
                raise
            data = r["Body"].read()
        recorded = r.get("Metadata", {}).get(SHA_META)
        if recorded is None or hashlib.sha256(data).hexdigest() != recorded:
            raise CorruptObjectError(f"{key} does not match the sha256 recorded at upload")
        return data

    def delete(self, key: str) -> None:
        """Remove `key` (nothing happens when it is absent)."""
        with self._errors(f"deleting {key}"):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def copy(self, source: str, dest: str, metadata: dict[str, str] | None = None) -> None:
        """Copy object `source` to `dest` inside the bucket, server-side (no bytes through the client), with its
        recorded sha256 and size plus `metadata`; `dest` is checked to hold the source's size afterwards."""
        h = self.head(source)
        if h is None:
            raise StoreError(f"cannot copy {source}: it is not in bucket {self.bucket}")
        meta = {SHA_META: h["sha256"] or "", SIZE_META: str(h["size"]), **(metadata or {})}

        def once() -> None:
            self._client.copy_object(Bucket=self.bucket, Key=dest, CopySource={"Bucket": self.bucket, "Key": source},
                                     MetadataDirective="REPLACE", Metadata=meta)
            got = self.head(dest)
            if got is None or got["size"] != h["size"]:
                raise CorruptObjectError(f"{dest} does not hold the {h['size']} bytes of {source}")

        self._retrying(f"copying {source}", once)
