"""``video-runner extract``: JPEG files plus a manifest, and one clear line on bad input."""

from __future__ import annotations

import argparse
import json

import pytest

from support.videos import make_video
from video_runner.domain.preprocess import decode_jpeg
from video_runner.entrypoints import extract_command


def run_cli(*argv):
    """Parse and dispatch the way the project's CLI does."""
    parser = argparse.ArgumentParser(prog="video-runner")
    extract_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["extract", *map(str, argv)])
    return args.handler(args)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "v.mp4", 12)


def test_extract_writes_one_jpeg_per_sampled_frame_and_a_manifest(video, tmp_path, capsys):
    """Frames 0, 5, 10 become 0.jpg, 5.jpg, 10.jpg; the manifest describes them and the video."""
    out = tmp_path / "out"
    assert run_cli(video, "--out", out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == str(video)
    assert manifest["video"] == {
        "width": 64,
        "height": 48,
        "fps": 25.0,
        "frame_count": 12,
        "duration_ms": 480,
        "rotation": 0,
    }
    assert manifest["sampling"] == {"every_n": 5}
    assert manifest["preprocessing"] == {
        "blur_ksize": 3,
        "alpha": 1.3,
        "beta": 5.0,
        "jpeg_quality": 95,
    }
    assert [f["frame_id"] for f in manifest["frames"]] == [0, 5, 10]
    assert [f["timestamp_ms"] for f in manifest["frames"]] == [0, 200, 400]
    for entry in manifest["frames"]:
        data = (out / f"{entry['frame_id']}.jpg").read_bytes()
        assert entry["bytes"] == len(data)
        assert decode_jpeg(data).shape == (entry["height"], entry["width"], 3)
    assert sorted(p.name for p in out.iterdir()) == ["0.jpg", "10.jpg", "5.jpg", "manifest.json"]
    assert "3 frames" in capsys.readouterr().out


def test_every_and_quality_override_the_settings(video, tmp_path):
    """--every 4 --quality 50 are used and recorded."""
    out = tmp_path / "out"
    assert run_cli(video, "--out", out, "--every", 4, "--quality", 50) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["frame_id"] for f in manifest["frames"]] == [0, 4, 8]
    assert manifest["sampling"] == {"every_n": 4}
    assert manifest["preprocessing"]["jpeg_quality"] == 50


def test_defaults_come_from_the_settings_environment(video, tmp_path, monkeypatch):
    """FRAME_EVERY_N and JPEG_QUALITY from the environment are the defaults."""
    monkeypatch.setenv("FRAME_EVERY_N", "6")
    monkeypatch.setenv("JPEG_QUALITY", "70")
    out = tmp_path / "out"
    assert run_cli(video, "--out", out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["frame_id"] for f in manifest["frames"]] == [0, 6]
    assert manifest["preprocessing"]["jpeg_quality"] == 70


def test_a_bad_video_exits_non_zero_with_one_line_and_no_traceback(tmp_path, capsys):
    """A text file: exit 1, a single stderr line naming the error code."""
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n")
    assert run_cli(path, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not_a_video" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "extra", [["--every", "0"], ["--quality", "101"]], ids=["every", "quality"]
)
def test_bad_arguments_exit_non_zero_with_one_line(video, tmp_path, capsys, extra):
    """Out-of-range --every or --quality: exit 2 and one line."""
    assert run_cli(video, "--out", tmp_path / "out", *extra) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_missing_file_exits_non_zero_with_one_line(tmp_path, capsys):
    """A path that does not exist is reported, not raised."""
    assert run_cli(tmp_path / "nope.mp4", "--out", tmp_path / "out") == 2
    assert "nope.mp4" in capsys.readouterr().err
