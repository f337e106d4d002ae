"""Where attachment bytes live: a small interface, the local disk or any S3-compatible store.

Rows in the database describe an attachment; the bytes go through ``BlobStore``.
Every ``put`` hashes and counts while it writes, so the size limit is enforced
on the stream itself (a client cannot lie with ``Content-Length``) and nothing
partial is ever visible under a key.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from services.core import errors
from services.core.settings import Settings

HEAD_BYTES = 8 * 1024  # what sniffing needs, kept so the type is told without reading again
READ_CHUNK_BYTES = 64 * 1024
SPOOL_BYTES = 8 * 1024 * 1024  # S3 uploads stay in memory up to this, then spill to a temp file

# "<tenant uuid>/<attachment uuid>": segments of safe characters, none starting
# with a dot, so no "..", no hidden name, and no clash with our ".tmp-" files.
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str  # hex
    head: bytes  # the first HEAD_BYTES bytes (all of them for a smaller blob)


class BlobTooLarge(errors.PayloadTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The attachment is larger than {limit} bytes.", extra={"limit": limit})
        self.limit = limit


class BlobNotFound(errors.NotFound):
    pass


class InvalidBlobKey(ValueError):
    """Keys are made by the platform; an unsafe one is a bug, never a client's input."""


class BlobStore(Protocol):
    def put(self, key: str, chunks: Iterable[bytes], max_bytes: int) -> StoredBlob:
        """Store the chunks under key, replacing it whole; BlobTooLarge past max_bytes."""
        ...

    def open(self, key: str) -> Iterator[bytes]:
        """The blob's chunks; BlobNotFound is raised here, before the first chunk.

        An iterator feeds a StreamingResponse as it is, and raising on open lets
        the route answer 404 before any header is sent.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...


def check_key(key: str) -> str:
    if len(key) > _MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise InvalidBlobKey(f"unsafe blob key: {key!r}")
    return key


class _Meter:
    """SHA-256, size and head of what went through, stopping at the limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._head = bytearray()

    def add(self, chunk: bytes) -> None:
        # Counted before it is written: an oversized chunk never touches the store.
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BlobTooLarge(self.max_bytes)
        self._sha256.update(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]

    def blob(self, key: str) -> StoredBlob:
        return StoredBlob(key=key, size=self.size, sha256=self._sha256.hexdigest(), head=bytes(self._head))


class LocalBlobStore:
    """Files under root, one per key; the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, chunks: Iterable[bytes], max_bytes: int) -> StoredBlob:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target so that os.replace is an atomic rename.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            meter = _Meter(max_bytes)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    meter.add(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_directory(path.parent)  # and the rename survives a crash
        return meter.blob(key)

    def open(self, key: str) -> Iterator[bytes]:
        try:
            file = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFound(key) from None
        return _read_chunks(file)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _read_chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(READ_CHUNK_BYTES):
            yield chunk


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Client(Protocol):
    """The part of boto3's S3 client we use (boto3 ships no type hints)."""

    def upload_fileobj(
        self, Fileobj: IO[bytes], Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None
    ) -> None: ...

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...


_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING_CODES


class S3BlobStore:
    """Objects in one bucket of any S3-compatible store (AWS, MinIO, Ceph...)."""

    def __init__(self, bucket: str, client: S3Client) -> None:
        self.bucket = bucket
        self.client = client

    def put(self, key: str, chunks: Iterable[bytes], max_bytes: int) -> StoredBlob:
        check_key(key)
        meter = _Meter(max_bytes)
        # Spooled first, so the limit is known before a byte reaches the bucket:
        # an oversized upload leaves no object and no dangling multipart upload.
        # upload_fileobj then goes multipart (and aborts on failure) by itself.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            for chunk in chunks:
                meter.add(chunk)
                spool.write(chunk)
            spool.seek(0)
            blob = meter.blob(key)
            self.client.upload_fileobj(
                spool, self.bucket, key, ExtraArgs={"Metadata": {"sha256": blob.sha256}}
            )
        return blob

    def open(self, key: str) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as error:
            if _is_missing(error):
                raise BlobNotFound(key) from None
            raise
        return _read_body(response["Body"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True


def _read_body(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_CHUNK_BYTES)
    finally:
        body.close()  # returns the connection to the pool even if the client went away


_S3_OPTIONS = frozenset({"endpoint_url", "region", "addressing_style"})


def blob_store_from_url(url: str, data_dir: Path) -> BlobStore:
    """``""`` or ``file:`` (data_dir/attachments), ``file:///path``, or
    ``s3://bucket?endpoint_url=...&region=...&addressing_style=path``.

    S3 credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``...,
    profiles, instance roles), never from the URL, so it can sit in settings.
    """
    if url in ("", "file:"):
        return LocalBlobStore(data_dir / "attachments")
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path and not parts.query:
        return LocalBlobStore(Path(parts.path))
    if parts.scheme == "s3" and parts.netloc and parts.path in ("", "/"):
        options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        unknown = set(options) - _S3_OPTIONS
        if unknown:
            raise ValueError(f"unknown S3 option(s) {sorted(unknown)} in blob store URL")
        option = {name: values[-1] for name, values in options.items()}
        style = option.get("addressing_style")
        # Imported here: boto3 adds about 0.3 s to every start and the embedded default never needs it.
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=option.get("endpoint_url") or None,
            region_name=option.get("region") or None,
            # MinIO and friends behind a plain host name need path-style addressing.
            config=Config(s3={"addressing_style": style}) if style else None,
        )
        return S3BlobStore(parts.netloc, client)
    raise ValueError(f"unsupported blob store URL: {url!r} (use file: or s3://bucket)")


@functools.cache
def _cached_store(url: str, data_dir: Path) -> BlobStore:
    return blob_store_from_url(url, data_dir)


def blob_store(settings: Settings) -> BlobStore:
    """The platform's store, made once per configuration."""
    return _cached_store(settings.blob_store_url, settings.data_dir.resolve())
