"""The S3 error classes against the real local S3 server (versitygw): what a message names is
the message's fault; what is missing from storage of ours never is."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.objects import s3_client
from video_runner import bootstrap
from video_runner.adapters.s3 import S3ObjectStore
from video_runner.errors import (
    AccessProblem,
    ErrorCode,
    InvalidMessage,
    PermanentError,
    SourceMissing,
)
from video_runner.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[S3ObjectStore]:
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    yield objects
    objects.close()


async def test_a_bucket_name_s3_cannot_take_is_permanent_for_the_event(store, tmp_path):
    """An event naming 'Not A Bucket!' is refused as bad_id at once, not retried forever."""
    with pytest.raises(InvalidMessage) as caught:
        await store.download_to_file("Not A Bucket!", "input/a.mp4", tmp_path / "a.video")
    assert caught.value.code == ErrorCode.BAD_ID


async def test_a_bucket_name_the_server_refuses_is_permanent_for_the_event(store, tmp_path):
    """'ab' passes botocore's check but not the server's: still permanent, never retriable."""
    with pytest.raises(PermanentError):
        await store.download_to_file("ab", "input/a.mp4", tmp_path / "a.video")


async def test_a_missing_source_object_is_missing_object(store, settings, tmp_path):
    """The bucket exists, the key does not: SourceMissing with missing_object."""
    with pytest.raises(SourceMissing) as caught:
        await store.download_to_file(settings.bucket_videos, "input/none.mp4", tmp_path / "v")
    assert caught.value.code == ErrorCode.MISSING_OBJECT
    assert not await store.exists(settings.bucket_videos, "input/none.mp4")


async def test_a_download_from_a_missing_source_bucket_fails_the_event(store, tmp_path):
    """The HEAD answers 404 as for a missing key: permanent for the event, never a stall."""
    with pytest.raises(SourceMissing) as caught:
        await store.download_to_file("no-such-bucket-7f3a", "input/a.mp4", tmp_path / "a.video")
    assert caught.value.code == ErrorCode.MISSING_OBJECT


async def test_a_missing_frames_bucket_on_put_is_not_missing_object(store, settings):
    """One infrastructure fault must not fail every video: an AccessProblem, waited out."""
    with pytest.raises(AccessProblem) as caught:
        await store.put_bytes(settings.bucket_frames, "frames/ev/0.jpg", b"jpeg", "image/jpeg")
    assert caught.value.dependency == "s3"
    assert not isinstance(caught.value, PermanentError)


async def test_a_download_lands_whole_and_leaves_no_part_file(store, settings, tmp_path):
    """The bytes arrive under the final name only once complete."""
    data = bytes(range(256)) * 4096
    await store.put_bytes(settings.bucket_videos, "input/whole.mp4", data, "video/mp4")
    path = tmp_path / "whole.video"
    assert await store.download_to_file(settings.bucket_videos, "input/whole.mp4", path) == len(
        data
    )
    assert path.read_bytes() == data
    assert list(tmp_path.iterdir()) == [path]


class _HeldBody:
    """An object body whose first read waits for ``release``: a transfer still running when its
    cancellation arrives."""

    def __init__(self, body: Any, reading: threading.Event, release: threading.Event) -> None:
        self.body, self.reading, self.release = body, reading, release

    def read(self, size: int) -> bytes:
        self.reading.set()
        self.release.wait(5)
        return bytes(self.body.read(size))

    def close(self) -> None:
        self.body.close()


class _HoldingClient:
    """A boto3 client whose ``get_object`` bodies are held (see ``_HeldBody``)."""

    def __init__(self, client: Any, reading: threading.Event, release: threading.Event) -> None:
        self.client, self.reading, self.release = client, reading, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        reply: dict[str, Any] = self.client.get_object(**kwargs)
        return {**reply, "Body": _HeldBody(reply["Body"], self.reading, self.release)}


async def test_a_cancelled_download_stops_its_thread_before_the_file_is_removed(
    store, settings, tmp_path
):
    """Cancel mid-transfer, then unlink as the caller's finally does: nothing reappears."""
    await store.put_bytes(settings.bucket_videos, "input/slow.mp4", b"x" * (4 << 20), "video/mp4")
    reading, release = threading.Event(), threading.Event()
    held = S3ObjectStore(_HoldingClient(s3_client(settings), reading, release))
    path = tmp_path / "slow.video"
    task = asyncio.create_task(
        held.download_to_file(settings.bucket_videos, "input/slow.mp4", path)
    )
    await asyncio.to_thread(reading.wait, 5)
    task.cancel()
    await asyncio.sleep(0.1)  # the cancellation is in before the transfer goes on
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    path.unlink(missing_ok=True)
    await asyncio.sleep(0.3)  # time for a stray thread to rename, if one were still running
    assert await asyncio.to_thread(lambda: sorted(tmp_path.iterdir())) == []
