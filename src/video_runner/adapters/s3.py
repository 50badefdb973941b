"""S3 adapter: boto3's client in worker threads, so its blocking I/O never holds the event loop.

Plain S3 API only (path-style addressing, SigV4), so the same code serves MinIO, AWS S3 and the
local versitygw. Errors are mapped onto the project's tree: a missing key is ``SourceMissing``;
bad credentials are ``ConfigurationError`` (a clear startup error, never a hang); network
trouble and 5xx replies are ``DependencyUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from video_runner.errors import (
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    InvalidVideo,
    SourceMissing,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_MISSING = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_CREDENTIALS = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "InvalidToken",
    "403",
}
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


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

    async def _call(self, what: str, func: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(func)
        except ClientError as exc:
            raise _classify(exc, what) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("s3", f"{what}: {exc}") from exc

    async def ping(self) -> None:
        await self._call("list buckets", self._client.list_buckets)

    async def ensure_bucket(self, bucket: str) -> None:
        def create() -> None:
            try:
                self._client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
                try:
                    self._client.create_bucket(Bucket=bucket)
                except ClientError as create_exc:
                    if _code(create_exc) not in _BUCKET_EXISTS:
                        raise

        await self._call(f"ensure bucket {bucket}", create)

    async def download_to_file(
        self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None
    ) -> int:
        def download() -> int:
            head = self._client.head_object(Bucket=bucket, Key=key)
            size = int(head["ContentLength"])
            if max_bytes is not None and size > max_bytes:
                raise InvalidVideo(
                    f"s3://{bucket}/{key} is {size} bytes, above the limit of {max_bytes}",
                    code=ErrorCode.FILE_TOO_LARGE,
                )
            # download_file streams ranged GETs to disk: the video is never whole in memory.
            self._client.download_file(bucket, key, str(path))
            return size

        return await self._call(f"download s3://{bucket}/{key}", download)

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
        def get() -> bytes:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await self._call(f"get s3://{bucket}/{key}", get)

    async def exists(self, bucket: str, key: str) -> bool:
        try:
            await self._call(
                f"head s3://{bucket}/{key}",
                lambda: self._client.head_object(Bucket=bucket, Key=key),
            )
        except SourceMissing:
            return False
        return True

    def close(self) -> None:
        self._client.close()


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _classify(exc: ClientError, what: str) -> Exception:
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code in _MISSING or code in _NO_BUCKET:
        return SourceMissing(f"{what}: not found ({code})")
    if code in _CREDENTIALS:
        return ConfigurationError(f"S3 refused the credentials ({what}: {code})")
    if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "RequestTimeout"}:  # noqa: PLR2004
        return DependencyUnavailable("s3", f"{what}: {code}")
    return DependencyUnavailable("s3", f"{what}: unexpected {code} ({status})")
