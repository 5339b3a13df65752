"""Where the object store is and how to reach it, from the environment, with the embedded server as default.

Variables (all optional):

- `NARES_S3_ENDPOINT` (else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`): the S3 endpoint URL.
  Unset: the embedded local server, `http://127.0.0.1:$NARES_S3_PORT` (port 9444 by default).
- `NARES_S3_BUCKET` (default `nares`), `NARES_S3_PREFIX` (default empty: keys start at the bucket root).
- `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`): credentials. Unset with a
  loopback endpoint: the embedded server's fixed pair; unset otherwise: boto3's own chain (profiles, roles).
- `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`).

Secrets never appear in `repr`/`str` or in messages, and are never written to disk: the embedded server's
fixed, public pair is the only one kept in DVC's `.dvc/config.local` (`embedded_credentials`); any other
credentials reach `dvc` through its environment (`nares.release.dvc_env`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from nares.environment import environment

DEFAULT_PORT = 9444
DEFAULT_BUCKET = "nares"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The only credential pair the embedded server (s3rver) accepts; it guards nothing outside loopback.
EMBEDDED_KEY_ID = "S3RVER"
EMBEDDED_SECRET = "S3RVER"


def nares_home() -> Path:
    """The factory state folder: `$NARES_HOME`, else `<repo>/var` (gitignored)."""
    return environment().home


def s3_port(env: Mapping[str, str] | None = None) -> int:
    """The embedded server's port: `$NARES_S3_PORT`, else 9444."""
    return int((environment().source if env is None else env).get("NARES_S3_PORT", DEFAULT_PORT))


def _mask(secret: str | None) -> str:
    return "None" if secret is None else f"'{secret[:2]}…({len(secret)} chars)'"


@dataclass(frozen=True)
class StoreSettings:
    """Endpoint, bucket, key prefix and credentials of the object store."""

    endpoint_url: str | None
    bucket: str = DEFAULT_BUCKET
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int = 6  # per request (botocore standard retry mode: exponential backoff, jitter)
    put_attempts: int = 4  # whole upload-verify cycles (`ObjectStore.put_file`), backoff between
    backoff_s: float = 0.5  # first pause of the cycle backoff; doubles each time
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> StoreSettings:
        e = environment().source if env is None else env
        endpoint = e.get("NARES_S3_ENDPOINT") or e.get("AWS_ENDPOINT_URL_S3") or e.get("AWS_ENDPOINT_URL")
        if not endpoint:
            endpoint = f"http://127.0.0.1:{s3_port(e)}"
        key_id, secret = e.get("AWS_ACCESS_KEY_ID"), e.get("AWS_SECRET_ACCESS_KEY")
        if not key_id and not secret and urlparse(endpoint).hostname in LOCAL_HOSTS:
            key_id, secret = EMBEDDED_KEY_ID, EMBEDDED_SECRET
        return cls(
            endpoint_url=endpoint,
            bucket=e.get("NARES_S3_BUCKET", DEFAULT_BUCKET),
            prefix=e.get("NARES_S3_PREFIX", "").strip("/"),
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=key_id or None,
            secret_access_key=secret or None,
            session_token=e.get("AWS_SESSION_TOKEN") or None,
        )

    def with_(self, **changes) -> StoreSettings:
        return replace(self, **changes)

    @property
    def is_local(self) -> bool:
        """True when the endpoint is on this machine's loopback (the embedded server, a tunnel, a local MinIO)."""
        return bool(self.endpoint_url) and urlparse(self.endpoint_url).hostname in LOCAL_HOSTS

    @property
    def embedded_credentials(self) -> bool:
        """True when the credentials are the embedded server's fixed, public pair on a loopback endpoint: the
        only credentials ever written to disk. Anything a user provided is passed through the environment."""
        return (
            self.is_local
            and (self.access_key_id, self.secret_access_key) == (EMBEDDED_KEY_ID, EMBEDDED_SECRET)
            and self.session_token is None
        )

    def key(self, *parts: str) -> str:
        """An object key under the prefix: `key("releases", "v1")` → `<prefix>/releases/v1`."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def __repr__(self) -> str:
        return (
            f"StoreSettings(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"region={self.region!r}, access_key_id={_mask(self.access_key_id)}, "
            f"secret_access_key={'***' if self.secret_access_key else None})"
        )

    __str__ = __repr__
