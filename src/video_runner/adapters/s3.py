"""S3 adapter: boto3's client in worker threads, so its blocking I/O never holds the event loop.

Plain S3 API only (path-style addressing, SigV4), so the same code serves MinIO, AWS S3 and the
local versitygw. Every failure goes through ``error_classes.classify_s3``, with the one piece of
context only the caller knows: whether the call reads an object named by a message (the video
of an event, the frame of a task: ``source``) or touches storage of our own. So a missing video
is ``SourceMissing`` while a missing frames bucket on a put is an ``AccessProblem`` that is waited
out, never a failed event.

A download streams to ``<path>.part`` and renames it into place only if it was not cancelled; a
cancelled download waits for its thread to stop before it lets the cancellation through, so the
caller's ``finally`` unlink always runs after the last write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from video_runner.adapters.error_classes import (
    S3_DENIED_CODES,
    classify_s3,
    is_s3_plain_denial,
    s3_error_code,
)
from video_runner.errors import ErrorCode, InvalidVideo, SourceMissing

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Suffix of a download in progress; ``services.work_dir`` sweeps leftovers of earlier runs.
PART_SUFFIX = ".part"
#: Small enough that a cancelled download notices within one read, large enough to be cheap.
_CHUNK_BYTES = 256 * 1024
_BUCKET_MISSING = {"404", "NoSuchBucket", "NotFound"}
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


class DownloadCancelled(Exception):
    """Raised inside the download thread once its awaiting task was cancelled."""


class S3ObjectStore:
    """Implements ``ports.ObjectStore``."""

    def __init__(self, client: Any) -> None:  # noqa: ANN401 - boto3 clients are untyped here
        self._client = client

    @classmethod
    def connect(
        cls,
        *,
        endpoint_url: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        region: str,
        verify: bool | str,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> S3ObjectStore:
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=32,
            # Checksums of newer boto3 default to headers some S3 servers reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
            verify=verify,
            config=config,
        )
        return cls(client)

    async def _call(self, what: str, func: Callable[[], T], *, source: bool = False) -> T:
        try:
            return await asyncio.to_thread(func)
        except Exception as exc:
            await self._raise_classified(exc, what, source=source)
            raise

    async def _raise_classified(self, exc: Exception, what: str, *, source: bool) -> None:
        """Raise what ``exc`` means; return (so the caller re-raises ``exc``) if it is not S3's."""
        valid = source and is_s3_plain_denial(exc) and await self._credentials_work()
        error = classify_s3(exc, what=what, source=source, credentials_valid=valid)
        if error is not exc:
            raise error from exc

    async def _credentials_work(self) -> bool:
        """Do our credentials authenticate? Tells a refused object from refused credentials."""

        def probe() -> bool:
            try:
                self._client.list_buckets()
            except ClientError as exc:
                # Authenticated but not allowed to list: the credentials themselves are fine.
                return s3_error_code(exc) in S3_DENIED_CODES
            return True

        try:
            return await asyncio.to_thread(probe)
        except Exception:  # noqa: BLE001 - no answer proves nothing: assume the worst (wait)
            return False

    async def ping(self) -> None:
        await self._call("list buckets", self._client.list_buckets)

    async def ensure_bucket(self, bucket: str) -> None:
        def create() -> None:
            try:
                self._client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if s3_error_code(exc) not in _BUCKET_MISSING:
                    raise
                try:
                    self._client.create_bucket(Bucket=bucket)
                except ClientError as create_exc:
                    if s3_error_code(create_exc) not in _BUCKET_EXISTS:
                        raise

        await self._call(f"ensure bucket {bucket}", create)

    async def download_to_file(
        self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None
    ) -> int:
        """Stream the object to ``path``; a cancellation returns only once the thread stopped.

        The bytes go to ``<path>.part``, renamed to ``path`` when complete; once cancelled, the
        thread stops at its next read and never renames, and the part file is removed.
        """
        what = f"download s3://{bucket}/{key}"
        cancelled = threading.Event()
        rename = threading.Lock()

        def download() -> int:
            head = self._client.head_object(Bucket=bucket, Key=key)
            _check_size(int(head["ContentLength"]), bucket, key, max_bytes)
            part = path.with_name(path.name + PART_SUFFIX)
            try:
                size = self._stream(bucket, key, part, max_bytes, cancelled)
                with rename:
                    if cancelled.is_set():
                        raise DownloadCancelled(what)
                    part.replace(path)
            finally:
                part.unlink(missing_ok=True)
            return size

        thread = asyncio.ensure_future(asyncio.to_thread(download))
        try:
            return await asyncio.shield(thread)
        except asyncio.CancelledError:
            with rename:  # after this, the thread can no longer rename its file into place
                cancelled.set()
            await _wait_through_cancellation(thread)
            raise
        except Exception as exc:
            await self._raise_classified(exc, what, source=True)
            raise

    def _stream(
        self, bucket: str, key: str, part: Path, max_bytes: int | None, cancelled: threading.Event
    ) -> int:
        body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
        written = 0
        try:
            with part.open("wb") as out:
                while chunk := body.read(_CHUNK_BYTES):
                    if cancelled.is_set():
                        raise DownloadCancelled(str(part))
                    written += len(chunk)
                    # The object may have grown since the HEAD: the limit holds on what arrives.
                    _check_size(written, bucket, key, max_bytes)
                    out.write(chunk)
        finally:
            body.close()
        return written

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            f"put s3://{bucket}/{key}",
            lambda: self._client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type
            ),
        )

    async def upload_file(self, bucket: str, key: str, path: Path, content_type: str) -> None:
        await self._call(
            f"upload s3://{bucket}/{key}",
            lambda: self._client.upload_file(
                str(path), bucket, key, ExtraArgs={"ContentType": content_type}
            ),
        )

    async def get_bytes(self, bucket: str, key: str) -> bytes:
        return await self._call(
            f"get s3://{bucket}/{key}",
            lambda: _read_body(self._client.get_object(Bucket=bucket, Key=key)),
            source=True,
        )

    async def size_of(self, bucket: str, key: str, *, max_bytes: int | None = None) -> int:
        """Implements ``ports.ObjectRanges``: the object's size (a HEAD), within ``max_bytes``."""

        def head() -> int:
            size = int(self._client.head_object(Bucket=bucket, Key=key)["ContentLength"])
            _check_size(size, bucket, key, max_bytes)
            return size

        return await self._call(f"head s3://{bucket}/{key}", head, source=True)

    async def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Implements ``ports.ObjectRanges``: the bytes ``[start, end)``, one ranged GET."""

        return await self._call(
            f"get s3://{bucket}/{key} [{start}, {end})",
            lambda: _read_body(
                self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            ),
            source=True,
        )

    async def stream(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """Implements ``ports.ObjectStream``: one GET, its body read a piece at a time in a
        worker thread, so no more than a piece is in memory."""
        what = f"get s3://{bucket}/{key}"
        body = await self._call(
            what, lambda: self._client.get_object(Bucket=bucket, Key=key)["Body"], source=True
        )
        try:
            while True:
                piece: bytes = await self._call(what, lambda: body.read(_CHUNK_BYTES))
                if not piece:
                    return
                yield piece
        finally:
            await asyncio.to_thread(body.close)

    async def keys_under(self, bucket: str, prefix: str, limit: int = 1000) -> list[str]:
        """Implements ``ports.ObjectSweeper``: the first ``limit`` keys under ``prefix``."""
        page = await self._call(
            f"list s3://{bucket}/{prefix}",
            lambda: self._client.list_objects_v2(
                Bucket=bucket, Prefix=prefix, MaxKeys=min(limit, 1000)
            ),
        )
        return [str(item["Key"]) for item in page.get("Contents") or []]

    async def delete_keys(self, bucket: str, keys: Sequence[str]) -> int:
        """Deletes in batches of 1,000 (the API's most); a missing key is no error. Returns how
        many the server did not refuse (a refused one is left for the next sweep)."""
        deleted = 0
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            answer = await self._call(
                f"delete {len(batch)} objects in s3://{bucket}",
                functools.partial(
                    self._client.delete_objects,
                    Bucket=bucket,
                    Delete={"Objects": batch, "Quiet": True},
                ),
            )
            deleted += len(batch) - len(answer.get("Errors") or [])
        return deleted

    async def exists(self, bucket: str, key: str) -> bool:
        try:
            await self._call(
                f"head s3://{bucket}/{key}",
                lambda: self._client.head_object(Bucket=bucket, Key=key),
                source=True,
            )
        except SourceMissing as exc:
            if exc.code != ErrorCode.MISSING_OBJECT:
                raise
            return False
        return True

    def close(self) -> None:
        self._client.close()


def _read_body(answer: Mapping[str, Any]) -> bytes:
    """The whole body of a GET's answer, its connection given back either way."""
    body = answer["Body"]
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def _check_size(size: int, bucket: str, key: str, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise InvalidVideo(
            f"s3://{bucket}/{key} is {size} bytes, above the limit of {max_bytes}",
            code=ErrorCode.FILE_TOO_LARGE,
        )


async def _wait_through_cancellation(thread: asyncio.Future[Any]) -> None:
    """Wait for the download thread to stop, whatever it ends with, even if cancelled again."""
    while not thread.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({thread})
    if not thread.cancelled():
        thread.exception()  # retrieved, so asyncio does not log it as never retrieved
