"""Tracks: objects linked across sampled frames, numbered from 1, summed up per track; the same
detections always give the same tracks."""

from __future__ import annotations

import json

import pytest

from support.fakes import FakeObjectStore, FakePredictionStore, RecordingTelemetry, config_of
from video_runner import bootstrap
from video_runner.bootstrap import configs
from video_runner.domain.exports import export
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPageAssembler, TaskRecord
from video_runner.domain.tracks import TrackBook, track_rows, trackable, wants_tracks
from video_runner.services.outbox_s3 import OutboxS3
from video_runner.services.tracking import FrameTracking
from video_runner.settings import load_settings

SETTINGS = load_settings()


def walking(frames: int = 12) -> list[FrameResult]:
    """A person walking right, a car standing still, and a dog that shows up half-way."""
    results = []
    for index in range(frames):
        i = index
        objects = [
            {"class": "person", "box": [10.0 + 4 * i, 10.0, 40.0 + 4 * i, 90.0], "conf": 0.8},
            {"class": "car", "box": [200.0, 50.0, 300.0, 120.0], "conf": 0.6 + index / 100},
        ]
        if index >= frames // 2:
            objects.append({"class": "dog", "box": [100.0, 150.0, 130.0, 170.0], "conf": 0.5})
        results.append(FrameResult(frame_id=index * 5, timestamp_ms=index * 200, objects=objects))
    return results


def link(results: list[FrameResult]) -> tuple[list[FrameResult], list[dict]]:
    tracking = FrameTracking(bootstrap.trackers(SETTINGS))
    return tracking.link(results), tracking.summaries()


def ids_of(results: list[FrameResult], cls: str) -> list[int | None]:
    return [o.get("track_id") for r in results for o in r.objects if o["class"] == cls]


def test_an_object_keeps_one_track_id_across_consecutive_frames():
    """The walking person, the standing car and the late dog each keep their own id."""
    linked, tracks = link(walking())
    assert set(ids_of(linked, "person")) == {1}
    assert set(ids_of(linked, "car")) == {2}
    assert set(ids_of(linked, "dog")) == {3}
    assert [t["class"] for t in tracks] == ["person", "car", "dog"]


def test_the_same_detections_give_the_same_tracks_whatever_else_runs_beside_them():
    """Two runs, and a third interleaved frame by frame with a tracker of another video, give
    the same ids and summaries: no numbering is shared between videos."""
    first = link(walking())
    second = link(walking())
    assert first == second
    one = FrameTracking(bootstrap.trackers(SETTINGS))
    other = FrameTracking(bootstrap.trackers(SETTINGS))
    interleaved = []
    for result in walking():
        other.link(list(reversed(walking())))
        interleaved.extend(one.link([result]))
    assert (interleaved, one.summaries()) == first


def test_a_track_summary_names_its_class_first_and_last_frame_and_best_confidence():
    """The car is seen in all twelve frames, its best confidence is its last one."""
    _, tracks = link(walking())
    car = next(t for t in tracks if t["class"] == "car")
    assert car == {
        "track_id": 2,
        "class": "car",
        "first_frame_id": 0,
        "last_frame_id": 55,
        "first_ms": 0,
        "last_ms": 2200,
        "frames": 12,
        "best_conf": pytest.approx(0.71),
    }


def test_objects_of_different_classes_never_share_a_track():
    """A car where a person was one frame before starts its own track."""
    box = [10.0, 10.0, 50.0, 50.0]
    results = [
        FrameResult(0, 0, [{"class": "person", "box": box, "conf": 0.9}]),
        FrameResult(5, 200, [{"class": "car", "box": box, "conf": 0.9}]),
    ]
    linked, tracks = link(results)
    assert ids_of(linked, "person") == [1]
    assert ids_of(linked, "car") == [2]
    assert len(tracks) == 2


def test_an_object_unseen_for_longer_than_the_lost_frames_gets_a_new_track():
    """Seen, then gone for more than TRACK_LOST_FRAMES sampled frames, then back: two tracks."""
    gap = SETTINGS.track_lost_frames + 5
    obj = {"class": "person", "box": [10.0, 10.0, 50.0, 90.0], "conf": 0.9}
    results = [FrameResult(0, 0, [obj])]
    results += [FrameResult(5 * i, 200 * i, []) for i in range(1, gap)]
    results.append(FrameResult(5 * gap, 200 * gap, [obj]))
    linked, tracks = link(results)
    assert ids_of(linked, "person") == [1, 2]
    assert [t["frames"] for t in tracks] == [1, 1]


def test_a_box_without_area_and_a_failed_frame_are_not_tracked_and_break_nothing():
    """A degenerate box gets no track id; a frame with an error is a frame without objects."""
    results = [
        FrameResult(0, 0, [{"class": "x", "box": [5.0, 5.0, 5.0, 9.0], "conf": 0.9}]),
        FrameResult(5, 200, [], error="bad_image: broken"),
    ]
    linked, tracks = link(results)
    assert "track_id" not in linked[0].objects[0]
    assert linked[1].error == "bad_image: broken"
    assert tracks == []
    assert trackable({"box": [1, 2, 3]}) is None


def test_the_book_numbers_tracks_from_one_in_order_of_first_appearance():
    """The library's own ids (here 40 and 7) become 1 and 2, as they first appear."""
    book = TrackBook()
    objects = [{"class": "a", "conf": 0.5}, {"class": "b", "conf": 0.7}]
    assert [o["track_id"] for o in book.label(0, 0, objects, [40, 7])] == [1, 2]
    assert [o.get("track_id") for o in book.label(5, 200, objects, [7, None])] == [2, None]
    assert [t["frames"] for t in book.summaries()] == [1, 2]
    with pytest.raises(ValueError, match="tracker answers"):
        book.label(10, 400, objects, [1])


def test_the_track_option_wins_over_the_service_default():
    """``track`` given decides; absent, TRACK_DEFAULT does."""
    assert wants_tracks({"track": True}, default=False)
    assert not wants_tracks({"track": False}, default=True)
    assert wants_tracks({}, default=True)
    assert not wants_tracks({}, default=False)


def test_timeline_rows_are_the_longest_tracks_placed_along_the_video():
    """Rows keep the longest tracks, in id order, as fractions of the video's length."""
    tracks = [
        {"track_id": 1, "class": "a", "first_frame_id": 0, "last_frame_id": 49, "frames": 10},
        {"track_id": 2, "class": "b", "first_frame_id": 50, "last_frame_id": 50, "frames": 1},
        {"track_id": 3, "class": "c", "first_frame_id": 20, "last_frame_id": 99, "frames": 16},
    ]
    rows = track_rows(tracks, span_frames=100, limit=2)
    assert [r["track_id"] for r in rows] == [1, 3]
    assert (rows[0]["start"], rows[0]["width"]) == (0.0, 0.5)
    assert (rows[1]["start"], rows[1]["width"]) == (0.2, 0.8)


async def _predictable(store: FakePredictionStore, options: dict) -> None:
    chunks = TaskPageAssembler("frames")
    results = walking()
    for ordinal, result in enumerate(results):
        record = TaskRecord(result.frame_id, result.timestamp_ms, 320, 240, "k", 0, ordinal)
        if (chunk := chunks.add(ordinal, record)) is not None:
            await store.record_task_page("ev-t", chunk)
    for chunk in chunks.finish():
        await store.record_task_page("ev-t", chunk)
    await store.save_results([("ev-t", r) for r in results])
    await store.add_progress("ev-t", 0, ResultCounts(len(results), 0))
    store.put(
        "ev-t",
        Status.PREDICTABLE,
        source={"bucket": "videos", "object": "input/ev-t.mp4"},
        sampling={"every_n": 5},
        options=options,
        video={"width": 320, "height": 240, "frame_count": 60},
        total_frames=len(results),
        results_partitions=1,
    )


def _outbox(store, objects, tmp_path) -> OutboxS3:
    return OutboxS3(
        config_of(configs.outbox_config, work_dir=tmp_path),
        store=store,
        objects=objects,
        telemetry=RecordingTelemetry(),
        trackers=bootstrap.trackers(SETTINGS),
    )


async def test_a_tracked_event_has_track_ids_and_summaries_in_its_json_and_exports(tmp_path):
    """``track: true``: every object of the final JSON has its track id, the JSON ends with
    the tracks, and the COCO and CSV exports carry the same ids."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await _predictable(store, {"track": True})
    assert await _outbox(store, objects, tmp_path).finish("ev-t")
    data = objects.objects["videos", "detection/ev-t.json"]
    final = json.loads(data)
    assert list(final)[-2:] == ["models", "tracks"]
    assert [t["track_id"] for t in final["tracks"]] == [1, 2, 3]
    by_class = {o["class"]: o["track_id"] for f in final["frames"] for o in f["objects"]}
    assert by_class == {"person": 1, "car": 2, "dog": 3}
    coco = json.loads(export(data, "coco"))
    assert {a["track_id"] for a in coco["annotations"]} == {1, 2, 3}
    assert [t["id"] for t in coco["tracks"]] == [1, 2, 3]
    rows = export(data, "csv").splitlines()
    assert rows[0].endswith(",track_id")
    assert {row.rsplit(",", 1)[1] for row in rows[1:]} == {"1", "2", "3"}


async def test_an_event_without_tracking_has_no_track_ids_and_no_tracks(tmp_path):
    """Without the option (TRACK_DEFAULT off) the final JSON is as it always was."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await _predictable(store, {})
    assert await _outbox(store, objects, tmp_path).finish("ev-t")
    final = json.loads(objects.objects["videos", "detection/ev-t.json"])
    assert "tracks" not in final
    assert all("track_id" not in o for f in final["frames"] for o in f["objects"])
