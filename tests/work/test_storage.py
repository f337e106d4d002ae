"""Blob stores, each run for real: files under a temp dir, and moto's S3 server over HTTP."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from services.core.problems import status_of
from services.work.storage import (
    HEAD_BYTES,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobKey,
    LocalBlobStore,
    S3BlobStore,
    blob_store_from_url,
)

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> tuple[Any, str]:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)
    bucket = f"attachments-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@dataclass
class Backend:
    store: BlobStore
    leftovers: Callable[[], list[str]]  # everything stored, finished or not


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "blobs"
        return Backend(
            LocalBlobStore(root),
            lambda: sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()),
        )
    client, bucket = request.getfixturevalue("s3_bucket")

    def leftovers() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(item["Key"] for item in [*objects, *uploads])

    return Backend(S3BlobStore(bucket, client), leftovers)


def key() -> str:
    return f"{uuid.uuid4()}/{uuid.uuid4()}"


def chunked(content: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


def test_put_then_open_gives_back_the_bytes_with_their_sha256_and_size(backend: Backend) -> None:
    content = bytes(range(256)) * 100
    name = key()

    stored = backend.store.put(name, chunked(content), max_bytes=len(content))

    assert stored.key == name
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.head == content[:HEAD_BYTES]
    assert b"".join(backend.store.open(name)) == content
    assert backend.leftovers() == [name]


def test_a_large_blob_streams_through_in_chunks(backend: Backend) -> None:
    # Above S3's multipart threshold (8 MiB) and the in-memory spool: both paths for real.
    content = b"0123456789abcdef" * (600 * 1024)
    name = key()

    stored = backend.store.put(name, chunked(content, 1 << 20), max_bytes=16 << 20)

    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    chunks = list(backend.store.open(name))
    assert len(chunks) > 1
    assert b"".join(chunks) == content


def test_over_the_limit_raises_at_once_and_leaves_nothing(backend: Backend) -> None:
    consumed = []

    def source() -> Iterator[bytes]:
        for index in range(100):
            consumed.append(index)
            yield b"x" * 1000

    with pytest.raises(BlobTooLarge) as raised:
        backend.store.put(key(), source(), max_bytes=2500)

    assert raised.value.limit == 2500
    assert len(consumed) == 3  # stopped at the chunk that passed the limit
    assert backend.leftovers() == []


def test_too_large_is_answered_413() -> None:
    assert status_of(BlobTooLarge(10)) == 413


def test_exactly_the_limit_is_accepted(backend: Backend) -> None:
    assert backend.store.put(key(), [b"a" * 10], max_bytes=10).size == 10


def test_a_failed_replacement_keeps_the_previous_blob(backend: Backend) -> None:
    name = key()
    backend.store.put(name, [b"first version"], max_bytes=100)

    with pytest.raises(BlobTooLarge):
        backend.store.put(name, [b"second version, far too long"], max_bytes=20)

    assert b"".join(backend.store.open(name)) == b"first version"
    assert backend.leftovers() == [name]


def test_a_source_that_fails_midway_leaves_nothing(backend: Backend) -> None:
    def source() -> Iterable[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        backend.store.put(key(), source(), max_bytes=100)

    assert backend.leftovers() == []


def test_delete_removes_and_exists_follows(backend: Backend) -> None:
    name = key()
    backend.store.put(name, [b"content"], max_bytes=100)
    assert backend.store.exists(name)

    backend.store.delete(name)

    assert not backend.store.exists(name)
    assert backend.leftovers() == []
    backend.store.delete(name)  # deleting again is not an error


def test_opening_a_missing_key_raises_before_the_first_chunk(backend: Backend) -> None:
    with pytest.raises(BlobNotFound):
        backend.store.open(key())
    assert status_of(BlobNotFound("x")) == 404


@pytest.mark.parametrize(
    "unsafe",
    [
        "",
        "../etc/passwd",
        "tenant/../other",
        "/etc/passwd",
        "tenant\\file",
        "tenant//file",
        "tenant/",
        ".hidden",
        "tenant/./file",
        "C:/file",
        "tenant/fi\x00le",
        "tenant/file name",
        "a" * 600,
    ],
)
def test_unsafe_keys_are_rejected(backend: Backend, unsafe: str) -> None:
    with pytest.raises(InvalidBlobKey):
        backend.store.put(unsafe, [b"x"], max_bytes=10)
    for operation in (backend.store.open, backend.store.exists, backend.store.delete):
        with pytest.raises(InvalidBlobKey):
            operation(unsafe)
    assert backend.leftovers() == []


def test_the_default_url_stores_under_the_data_dir(tmp_path: Path) -> None:
    for url in ("", "file:"):
        store = blob_store_from_url(url, tmp_path)
        assert isinstance(store, LocalBlobStore)
        assert store.root == tmp_path / "attachments"
    elsewhere = blob_store_from_url(f"file://{tmp_path / 'blobs'}", tmp_path)
    assert isinstance(elsewhere, LocalBlobStore)
    assert elsewhere.root == tmp_path / "blobs"


def test_an_s3_url_reaches_the_bucket_with_credentials_from_the_environment(
    s3_bucket: tuple[Any, str], s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bucket = s3_bucket
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    name = key()

    store = blob_store_from_url(
        f"s3://{bucket}?endpoint_url={s3_endpoint}&region={REGION}&addressing_style=path", tmp_path
    )
    store.put(name, [b"through the URL"], max_bytes=100)

    assert client.get_object(Bucket=bucket, Key=name)["Body"].read() == b"through the URL"


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "s3://", "s3://bucket/prefix", "s3://bucket?secret=1", "relative/dir"]
)
def test_unknown_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"URL|option"):
        blob_store_from_url(url, tmp_path)
