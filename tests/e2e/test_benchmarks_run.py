"""The benchmark scripts still run against the code and the local stack (tiny inputs).

CI does not run the benchmarks themselves (they need a quiet machine and minutes), so an API
change could break them unseen until the next measurement; these runs take seconds and their
figures mean nothing. Only that each script finishes and prints its summary is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout_s: float) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "bench")])}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.timeout(300)
def test_the_extraction_and_stage_benchmarks_run_on_tiny_inputs():
    extract = run_bench("bench/extract.py", "--tiny", "--quick", "--repeats", "1", timeout_s=240)
    assert "extractor / ffmpeg -f null - (decode all, CLI):" in extract
    stages = run_bench("bench/stages.py", "--tiny", timeout_s=120)
    assert "work per sampled frame:" in stages
    inference = run_bench("bench/inference.py", "--tiny", timeout_s=120)
    assert "ours/bare" in inference
    process = run_bench("bench/process.py", "--tiny", timeout_s=120)
    assert "the model's share of the run's CPU" in process


@pytest.mark.timeout(300)
def test_the_video_path_and_results_path_benchmarks_run_on_the_stack():
    video_path = run_bench("bench/video_path.py", "--tiny", "--repeats", "1", timeout_s=240)
    assert "the video path runs at" in video_path
    results = run_bench(
        "bench/results_path.py", "--parts", "ab", "--prefill", "1000", timeout_s=240
    )
    assert "results/s with 1,000 stored / with 1,000:" in results
    segments = run_bench("bench/segments.py", "--tiny", timeout_s=240)
    assert "speed-up with two runners:" in segments
