"""Every process builds through the composition root; only the one that runs a model or tracks
loads onnxruntime, onnx or norfair (together ~200 MB resident and seconds of import)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("onnx", "onnxruntime", "norfair", "scipy")


def _loaded_after(code: str) -> set[str]:
    """Which of the heavy packages a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(completed.stdout.split())


def test_the_composition_root_and_the_cli_load_no_model_runtime_nor_tracker():
    """Importing ``bootstrap`` and the CLI (what the runner and ``extract`` start with) leaves
    all four unloaded."""
    assert _loaded_after("import video_runner.bootstrap, video_runner.entrypoints.cli") == set()


def test_the_hog_detector_and_a_tracker_load_only_what_they_use():
    """Building HOG loads none of them; building a tracker loads norfair (and its scipy) but no
    model runtime."""
    hog = """
from video_runner.adapters.detectors import build_detector
build_detector("hog", onnx_model_path=None, model_dir=".", confidence=0.5, iou=0.5, threads=1,
               providers=())
"""
    tracker = """
from video_runner.adapters.trackers import norfair_trackers
norfair_trackers(min_iou=0.3, lost_frames=3)().update([(0, 0, 10, 10)], [0.9], ["car"])
"""
    assert _loaded_after(hog) == set()
    assert _loaded_after(tracker) == {"norfair", "scipy"}
