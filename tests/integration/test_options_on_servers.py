"""Per-video options on the real stack: sampling by time, ranges, classes and confidence floors."""

from __future__ import annotations

import json

import pytest

from support.documents import stored_document
from support.options import known_inference, submit_with_options
from support.stack import running, store_of, wait_for
from support.videos import decode_all_bgr, make_ffmpeg_video, make_video
from video_runner import bootstrap

VFR_MS = [0, 40, 80, 200, 210, 220, 500, 540, 1000, 1040, 1500, 1900, 2000, 2300]
X264_GOP = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50")


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    yield store
    await store.close()


async def _final(settings, store, event_id):
    async def ready():
        document = await stored_document(store, event_id)
        return document if document and document["status"] in {"ready", "failed"} else None

    document = await wait_for(ready, timeout_s=120)
    assert document["status"] == "ready", document.get("error")
    data = await bootstrap.object_store(settings).get_bytes(
        settings.bucket_videos, f"detection/{event_id}.json"
    )
    return document, json.loads(data)


def _nearest(times_ms, instants):
    return sorted(
        {min(range(len(times_ms)), key=lambda i: (abs(times_ms[i] - t), i)) for t in instants}
    )


@pytest.mark.timeout(300)
async def test_options_hold_in_the_final_json_of_each_video(settings, store, tmp_path):
    """Three videos through runner, inference and outbox-S3: a VFR video at 2 fps gives the
    frames nearest each half second by PTS; a range 4 s to 6 s gives only frames inside it,
    with global ids; classes and a confidence floor hold in every frame; the options and the
    tag are in the JSON header."""
    vfr = make_video(tmp_path / "vfr.mp4", len(VFR_MS), pts_ms=VFR_MS)
    gop = make_ffmpeg_video(tmp_path / "gop.mp4", 300, output_args=X264_GOP)
    runner, outbox = bootstrap.Runner(settings), bootstrap.Outbox(settings)
    inference = known_inference(settings)
    async with running(runner), running(inference), running(outbox):
        await submit_with_options(settings, vfr, "opt-vfr", {"fps": 2, "tag": "vfr"})
        await submit_with_options(
            settings,
            gop,
            "opt-range",
            {"every_n": 5, "start_ms": 4000, "end_ms": 6000, "classes": ["person"]},
        )
        await submit_with_options(
            settings, gop, "opt-floor", {"min_confidence": 0.5, "every_n": 50}
        )
        results = {
            e: await _final(settings, store, e) for e in ("opt-vfr", "opt-range", "opt-floor")
        }

    times = [round(t * 1000) for t, _ in decode_all_bgr(vfr)]
    document, merged = results["opt-vfr"]
    expected = _nearest(times, [0, 500, 1000, 1500, 2000])
    assert [f["frame_id"] for f in merged["frames"]] == expected
    assert [f["timestamp_ms"] for f in merged["frames"]] == [times[i] for i in expected]
    assert merged["sampling"] == {"fps": 2.0}
    assert merged["options"] == {"fps": 2.0, "tag": "vfr"}
    assert document["options"]["tag"] == "vfr"

    _, merged = results["opt-range"]
    assert [f["frame_id"] for f in merged["frames"]] == list(range(100, 150, 5))
    assert all(4000 <= f["timestamp_ms"] < 6000 for f in merged["frames"])
    assert {o["class"] for f in merged["frames"] for o in f["objects"]} == {"person"}
    assert all(len(f["objects"]) == 2 for f in merged["frames"])

    _, merged = results["opt-floor"]
    assert [f["frame_id"] for f in merged["frames"]] == list(range(0, 300, 50))
    confidences = [o["conf"] for f in merged["frames"] for o in f["objects"]]
    assert confidences
    assert min(confidences) >= 0.5
    assert {o["class"] for f in merged["frames"] for o in f["objects"]} == {"person", "car"}


async def test_an_event_with_a_bad_option_fails_with_bad_options_and_is_dead_lettered(
    settings, store, tmp_path
):
    """every_n and fps together: failed with bad_options, the message copied to the DLQ."""
    from support.objects import header
    from support.stack import read_topic

    video = make_video(tmp_path / "v.mp4", 5)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        await submit_with_options(settings, video, "opt-bad", {"every_n": 5, "fps": 2})

        async def failed():
            document = await stored_document(store, "opt-bad")
            return document if document and document["status"] == "failed" else None

        document = await wait_for(failed, timeout_s=60)
    assert document["error"]["code"] == "bad_options"
    dlq = await read_topic(
        settings, settings.dlq_topic(settings.topic_outbox_events), until=lambda r: len(r) >= 1
    )
    assert [header(r, "error_code") for r in dlq] == ["bad_options"]
