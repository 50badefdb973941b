"""The local S3 server (versitygw, tools/stack) behaves like S3 for what video-runner uses.

Runs against the real server started by `tools/stack/stack.sh up`; connection settings
come from S3_ENDPOINT_URL, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (see .stack/env).
Path-style addressing, signature v4, region us-east-1.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

REGION = "us-east-1"
MIB = 1024 * 1024


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run `bash tools/stack/stack.sh up` and source .stack/env")
    return value


def _client(secret: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=_env("S3_ENDPOINT_URL"),
        aws_access_key_id=_env("S3_ACCESS_KEY_ID"),
        aws_secret_access_key=secret if secret is not None else _env("S3_SECRET_ACCESS_KEY"),
        region_name=REGION,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def _open(url: str) -> tuple[int, bytes]:
    """GET without any credentials, bypassing proxies; returns (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


@pytest.fixture
def s3() -> Iterator[Any]:
    client = _client()
    yield client
    client.close()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh bucket, emptied and deleted afterwards."""
    name = f"it-stack-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
    for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=name)


def test_an_object_put_can_be_read_back_with_its_metadata(s3: Any, bucket: str) -> None:
    """PutObject then GetObject returns the same bytes, content type and user metadata."""
    body = os.urandom(4096)
    s3.put_object(
        Bucket=bucket,
        Key="clips/a.bin",
        Body=body,
        ContentType="application/octet-stream",
        Metadata={"source": "test"},
    )
    got = s3.get_object(Bucket=bucket, Key="clips/a.bin")
    with got["Body"] as stream:
        assert stream.read() == body
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "application/octet-stream"
    assert got["Metadata"] == {"source": "test"}


def test_listing_with_a_prefix_returns_only_the_matching_keys(s3: Any, bucket: str) -> None:
    """ListObjectsV2 with a prefix lists exactly the keys under it, in key order."""
    for key in ("frames/1.jpg", "frames/2.jpg", "videos/a.mp4"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="frames/")
    assert [o["Key"] for o in listed["Contents"]] == ["frames/1.jpg", "frames/2.jpg"]
    assert listed["KeyCount"] == 2


def test_the_stack_buckets_videos_and_frames_exist(s3: Any) -> None:
    """`stack.sh up` creates the buckets the service expects."""
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"videos", "frames"} <= names


def test_a_presigned_get_url_can_be_fetched_without_credentials(s3: Any, bucket: str) -> None:
    """A presigned GET URL works from a plain HTTP client that holds no credentials."""
    s3.put_object(Bucket=bucket, Key="shared/clip.bin", Body=b"presigned body")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared/clip.bin"}, ExpiresIn=300
    )
    status, body = _open(url)
    assert (status, body) == (200, b"presigned body")


def test_a_multipart_upload_of_several_parts_is_assembled_in_order(s3: Any, bucket: str) -> None:
    """Parts of 5 MiB (and a short last part) complete into one object with all bytes in order."""
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1024)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big/video.bin")
    parts = []
    for number, data in enumerate(parts_data, start=1):
        resp = s3.upload_part(
            Bucket=bucket,
            Key="big/video.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
        )
        parts.append({"PartNumber": number, "ETag": resp["ETag"]})
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big/video.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    assert done["ETag"].strip('"').endswith("-3")

    whole = b"".join(parts_data)
    got = s3.get_object(Bucket=bucket, Key="big/video.bin")
    with got["Body"] as stream:
        data = stream.read()
    assert got["ContentLength"] == len(whole)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(whole).hexdigest()


def test_a_request_signed_with_a_wrong_secret_is_rejected(bucket: str) -> None:
    """The server checks signatures: a wrong secret gets a 403 and no data."""
    bad = _client(secret="not-the-secret")
    try:
        with pytest.raises(ClientError) as excinfo:
            bad.list_objects_v2(Bucket=bucket)
    finally:
        bad.close()
    error = excinfo.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


def test_an_anonymous_request_is_rejected(s3: Any, bucket: str) -> None:
    """Unsigned requests can neither read an object nor list a bucket."""
    s3.put_object(Bucket=bucket, Key="private.bin", Body=b"secret")
    endpoint = _env("S3_ENDPOINT_URL").rstrip("/")
    status, body = _open(f"{endpoint}/{bucket}/private.bin")
    assert status == 403
    assert b"secret" not in body
    status, _ = _open(f"{endpoint}/{bucket}")
    assert status == 403
