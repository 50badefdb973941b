"""``video-runner process`` with no setting and no network finds what the demo video shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from support.videos import real_video
from video_runner.adapters.detectors.bundled import YOLOV4_TINY

VIDEO_RUNNER = Path(sys.executable).with_name("video-runner")


@pytest.mark.timeout(180)
def test_process_without_settings_or_network_finds_people_cars_and_bicycles(tmp_path):
    """In a network namespace of its own (no interface but loopback, which is down), the
    default detector runs from the installed model: people, cars and bicycles in bikes.mp4,
    and the final JSON names that model and its version."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is part of Debian's base system"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DETECTOR", "ONNX_"))}
    out = tmp_path / "bikes.json"

    done = subprocess.run(
        [
            unshare,
            "--net",
            str(VIDEO_RUNNER),
            "process",
            str(real_video("bikes.mp4")),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    classes = Counter(o["class"] for frame in result["frames"] for o in frame["objects"])
    assert classes["person"] >= 10, classes
    assert classes["car"] >= 20, classes
    assert classes["bicycle"] >= 5, classes
    assert result["models"] == [f"yolov4-tiny@{YOLOV4_TINY.model_version}"]
