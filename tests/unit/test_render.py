"""Annotated videos: frames in, boxes drawn, H.264 out at the sampling rate."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from support.fakes import FakeObjectStore, FakePredictionStore
from support.videos import make_video
from video_runner.adapters.h264 import H264Writer
from video_runner.domain.preprocess import encode_jpeg
from video_runner.entrypoints.cli import main
from video_runner.errors import PermanentError
from video_runner.services.detection_reads import DetectionReader
from video_runner.services.render import render_annotated, stored_jpegs

PERSON = {"class": "person", "box": [8.0, 8.0, 40.0, 40.0], "conf": 0.9}


def probe(path):
    """Frame count (decoded, as ffprobe -count_frames does), rate, codec and size."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, stream.average_rate, stream.codec_context.name, stream.width, stream.height


async def jpegs_of(count, width=65, height=49):
    for index in range(count):
        image = np.full((height, width, 3), 40 + 10 * index, dtype=np.uint8)
        yield index * 5, encode_jpeg(image, 95)


async def test_a_render_writes_one_h264_frame_per_sampled_frame_at_the_sampling_rate(tmp_path):
    """Seven frames at 25/5 fps: seven decodable H.264 frames at 5 fps, odd sizes made even."""
    out = tmp_path / "annotated.mp4"
    ticks = []
    with H264Writer(out, Fraction(5)) as writer:
        written = await render_annotated(
            jpegs_of(7), {0: [PERSON], 10: [PERSON]}, writer, on_frame=lambda: ticks.append(1)
        )
    assert written == 7
    assert len(ticks) == 7
    frames, rate, codec, width, height = probe(out)
    assert (frames, rate, codec) == (7, 5, "h264")
    assert (width, height) == (64, 48)
    assert not list(tmp_path.glob(".*.part"))


async def test_a_failed_render_leaves_no_file_under_the_requested_name(tmp_path):
    """An error mid-way drops the partial file: no truncated video is left behind."""
    out = tmp_path / "annotated.mp4"

    async def broken():
        async for item in jpegs_of(2):
            yield item
        raise PermanentError("frame 10 of event e is not in bucket frames")

    with pytest.raises(PermanentError), H264Writer(out, Fraction(5)) as writer:
        await render_annotated(broken(), {}, writer)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


async def test_stored_frames_come_in_order_and_a_missing_one_is_an_error():
    """The frames bucket is read ahead but yielded in frame order; a gap stops the render."""
    objects = FakeObjectStore()
    for frame_id in (0, 5, 10):
        await objects.put_bytes("frames", f"frames/e/{frame_id}.jpg", bytes([frame_id]), "x")
    reader = DetectionReader(FakePredictionStore(), objects, "frames")
    got = [frame_id async for frame_id, _ in stored_jpegs(reader, "e", [0, 5, 10])]
    assert got == [0, 5, 10]
    with pytest.raises(PermanentError, match="frame 15 of event e"):
        _ = [item async for item in stored_jpegs(reader, "e", [0, 5, 15, 10])]


def test_process_with_annotate_writes_the_json_and_a_video_of_every_sampled_frame(tmp_path):
    """`process VIDEO --annotate FILE` needs no server: 23 frames every 5th gives 5 frames."""
    video = make_video(tmp_path / "clip.mp4", frames=23, width=96, height=64)
    out, annotated = tmp_path / "clip.json", tmp_path / "clip-annotated.mp4"
    code = main(["process", str(video), "--out", str(out), "--annotate", str(annotated)])
    assert code == 0
    document = json.loads(out.read_text())
    assert [f["frame_id"] for f in document["frames"]] == [0, 5, 10, 15, 20]
    frames, rate, codec, width, height = probe(annotated)
    assert (frames, rate, codec, width, height) == (5, 5, "h264", 96, 64)


def test_process_with_annotate_draws_the_frames_the_run_options_sampled(tmp_path):
    """`--every-n 3`: the annotated video holds frames 0, 3, ..., 21, not the default every 5th."""
    video = make_video(tmp_path / "clip.mp4", frames=23, width=96, height=64)
    out, annotated = tmp_path / "clip.json", tmp_path / "clip-annotated.mp4"
    argv = ["process", str(video), "--every-n", "3", "--out", str(out)]
    assert main([*argv, "--annotate", str(annotated)]) == 0
    document = json.loads(out.read_text())
    assert [f["frame_id"] for f in document["frames"]] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert probe(annotated)[0] == 8


def test_render_refuses_an_id_off_the_allowlist_before_touching_a_server(capsys):
    """A bad id is one line on stderr and a non-zero exit, no traceback."""
    assert main(["render", "../x", "--out", "x.mp4"]) != 0
    assert "not a valid event id" in capsys.readouterr().err
