"""The merged result JSON (rendered in a stream, sorted, with its legacy twin) and completion."""

from __future__ import annotations

import json

import pytest

from video_runner.domain.results import (
    FrameResult,
    MergedJson,
    judge_completion,
    merged_document,
    merged_header,
    render_merged,
)

HEADER = {"event_id": "ev-1", "status": "predictable", "total_frames": 3}
PERSON = {"class": "person", "box": [1.0, 2.0, 30.5, 40.25], "conf": 0.91}
CAR = {"class": "car", "box": [5.0, 6.0, 7.0, 8.0], "conf": 0.5}


def _frames() -> list[FrameResult]:
    return [
        FrameResult(frame_id=0, timestamp_ms=0, objects=[PERSON]),
        FrameResult(frame_id=5, timestamp_ms=200, objects=[]),
        FrameResult(frame_id=10, timestamp_ms=400, objects=[PERSON, CAR]),
    ]


def _walk_compact_merged(text: str) -> tuple[dict, dict[str, list[int]]]:
    """Parse compact merged JSON element by element (memory stays flat on huge documents).

    Returns the header fields and, for ``frames`` and ``prediction``, the ids in order; raises
    ``json.JSONDecodeError`` or ``AssertionError`` where the text is not valid JSON.
    """
    decoder = json.JSONDecoder()
    header: dict = {}
    ids: dict[str, list[int]] = {}
    assert text[0] == "{"
    pos = 1
    while True:
        key, pos = decoder.raw_decode(text, pos)
        assert isinstance(key, str)
        assert text[pos] == ":"
        pos += 1
        if key in {"frames", "prediction"}:
            assert text[pos] == "["
            pos += 1
            seen: list[int] = []
            if text[pos] != "]":
                while True:
                    element, pos = decoder.raw_decode(text, pos)
                    seen.append(element["frame_id"] if key == "frames" else element["frame"])
                    if text[pos] == "]":
                        break
                    assert text[pos] == ","
                    pos += 1
            pos += 1
            ids[key] = seen
        else:
            header[key], pos = decoder.raw_decode(text, pos)
        if text[pos] == "}":
            break
        assert text[pos] == ","
        pos += 1
    assert pos == len(text) - 1, "text after the end of the document"
    return header, ids


def test_the_merged_document_lists_frames_sorted_whatever_order_they_came_in():
    """merged_document sorts by frame_id, and keeps the header fields at the top level."""
    document = merged_document(HEADER, list(reversed(_frames())))
    assert [f["frame_id"] for f in document["frames"]] == [0, 5, 10]
    assert document["event_id"] == "ev-1"
    assert document["total_frames"] == 3
    assert document["frames"][2] == {
        "frame_id": 10,
        "timestamp_ms": 400,
        "objects": [PERSON, CAR],
    }


def test_the_prediction_twin_repeats_every_frame_as_frame_and_objects():
    """``prediction`` is the older consumers' view: {"frame", "objects"} per frame, same order."""
    document = merged_document(HEADER, _frames())
    assert document["prediction"] == [
        {"frame": 0, "objects": [PERSON]},
        {"frame": 5, "objects": []},
        {"frame": 10, "objects": [PERSON, CAR]},
    ]


def test_rendered_chunks_join_into_the_same_json_as_the_merged_document():
    """render_merged's chunks are one valid JSON text equal to merged_document's dict."""
    text = "".join(render_merged(HEADER, _frames()))
    assert json.loads(text) == merged_document(HEADER, _frames())


def test_frames_out_of_order_are_refused_while_rendering():
    """A frame id lower than (or equal to) the previous one raises instead of writing bad JSON."""
    with pytest.raises(ValueError, match="out of order"):
        "".join(render_merged(HEADER, list(reversed(_frames()))))
    duplicate = [_frames()[0], _frames()[0]]
    with pytest.raises(ValueError, match="out of order"):
        "".join(render_merged(HEADER, duplicate))


def test_the_second_pass_is_checked_for_order_too():
    """After middle(), legacy() starts a fresh order check and refuses a step back."""
    writer = MergedJson(HEADER)
    writer.head()
    for result in _frames():
        writer.frame(result)
    writer.middle()
    writer.legacy(_frames()[1])
    with pytest.raises(ValueError, match="out of order"):
        writer.legacy(_frames()[0])


def test_no_frames_renders_empty_lists():
    """An event with no result yet renders ``frames`` and ``prediction`` as empty lists."""
    assert merged_document(HEADER, []) == {**HEADER, "frames": [], "prediction": [], "models": []}


def test_an_empty_header_still_renders_valid_json():
    """Without header fields the document is just the two lists and the models."""
    assert merged_document({}, _frames()[:1]) == {
        "frames": [{"frame_id": 0, "timestamp_ms": 0, "objects": [PERSON]}],
        "prediction": [{"frame": 0, "objects": [PERSON]}],
        "models": [],
    }


def test_the_document_names_every_model_that_answered_once_sorted():
    """``models`` lists the distinct detectors of the frames (a rolling upgrade gives two);
    a frame without a model (an older worker's result) adds none."""
    frames = [
        FrameResult(frame_id=0, timestamp_ms=0, model="yolov4-tiny@b.c1"),
        FrameResult(frame_id=5, timestamp_ms=200, model="hog-people@a"),
        FrameResult(frame_id=10, timestamp_ms=400, model="yolov4-tiny@b.c1"),
        FrameResult(frame_id=15, timestamp_ms=600),
    ]
    document = merged_document(HEADER, frames)
    assert document["models"] == ["hog-people@a", "yolov4-tiny@b.c1"]
    assert all("model" not in entry for entry in document["frames"])


def test_error_frames_keep_their_error_in_frames_but_not_in_prediction():
    """A detector error is visible on the frame entry; the legacy twin has no such field."""
    frames = [
        FrameResult(frame_id=0, timestamp_ms=0, objects=[PERSON]),
        FrameResult(frame_id=5, timestamp_ms=200, error="bad_image: not a JPEG"),
    ]
    document = merged_document(HEADER, frames)
    assert "error" not in document["frames"][0]
    assert document["frames"][1] == {
        "frame_id": 5,
        "timestamp_ms": 200,
        "objects": [],
        "error": "bad_image: not a JPEG",
    }
    assert document["prediction"][1] == {"frame": 5, "objects": []}


def test_merged_header_is_taken_from_the_prediction_document():
    """The header names the event by the document's _id and says predictable."""
    header = merged_header(
        {
            "_id": "ev-9",
            "status": "ready",
            "source": {"bucket": "videos", "object": "input/ev-9.mp4"},
            "video": {"width": 64},
            "sampling": {"every_n": 5},
            "preprocessing": {"blur_ksize": 3},
            "total_frames": 7,
            "lease_owner": "w1",
        }
    )
    assert header == {
        "event_id": "ev-9",
        "status": "predictable",
        "source": {"bucket": "videos", "object": "input/ev-9.mp4"},
        "video": {"width": 64},
        "sampling": {"every_n": 5},
        "preprocessing": {"blur_ksize": 3},
        "total_frames": 7,
        "failed_frames": 0,
    }


@pytest.mark.parametrize(
    ("counts", "complete", "too_many"),
    [
        ((None, 10, 0, 0.0), False, False),  # extraction still running: never complete
        ((10, 9, 0, 0.0), False, False),  # one result missing
        ((10, 10, 0, 0.0), True, False),  # every frame has its one result
        ((10, 10, 3, 0.2), True, True),  # 30 % failed, 20 % allowed
        ((10, 10, 2, 0.2), True, False),  # exactly at the threshold is still fine
        ((10, 10, 1, 0.0), True, True),  # the default allows no failure at all
        ((10, 9, 9, 0.0), False, False),  # failures only count once complete
    ],
    ids=[
        "no-total",
        "fewer",
        "equal",
        "ratio-above",
        "ratio-at",
        "default-no-failure",
        "incomplete-failures",
    ],
)
def test_judge_completion(counts, complete, too_many):
    """Complete once distinct results reach total_frames; failed only above the allowed ratio."""
    total, received, failed, ratio = counts
    verdict = judge_completion(total, received, failed, ratio)
    assert verdict.complete is complete
    assert verdict.too_many_failures is too_many
    assert verdict.failed_frames == failed


def test_the_streaming_walker_agrees_with_json_loads_on_a_small_document():
    """The element-by-element parser used below reads what json.loads reads."""
    text = "".join(render_merged(HEADER, _frames()))
    header, ids = _walk_compact_merged(text)
    assert header == {**HEADER, "models": []}
    assert ids == {"frames": [0, 5, 10], "prediction": [0, 5, 10]}
    with pytest.raises((AssertionError, json.JSONDecodeError)):
        _walk_compact_merged(text.replace("],", ",],", 1))


@pytest.mark.slow
def test_a_three_hour_video_renders_as_a_stream_into_valid_json_above_16_mb(tmp_path):
    """54,000 frames x 20 objects, streamed in two passes, is valid sorted JSON over 16 MB."""
    frame_count = 54_000
    objects = [
        {"class": "person", "box": [12.5 + i, 30.25, 100.0, 200.75], "conf": 0.9123}
        for i in range(20)
    ]

    def frames():  # a generator: the frames are never held together, like a database cursor
        for i in range(frame_count):
            yield FrameResult(frame_id=i * 5, timestamp_ms=i * 200, objects=objects, model="m@1")

    writer = MergedJson({"event_id": "three-hours", "status": "predictable"})
    path = tmp_path / "merged.json"
    with path.open("w", encoding="utf-8") as out:
        out.write(writer.head())
        for result in frames():
            out.write(writer.frame(result))
        out.write(writer.middle())
        for result in frames():
            out.write(writer.legacy(result))
        out.write(writer.tail())

    assert path.stat().st_size > 16 * 1024 * 1024
    header, ids = _walk_compact_merged(path.read_text(encoding="utf-8"))
    assert header == {"event_id": "three-hours", "status": "predictable", "models": ["m@1"]}
    expected = [i * 5 for i in range(frame_count)]
    assert ids["frames"] == expected
    assert ids["prediction"] == expected
    path.unlink()  # ~140 MB: not kept among pytest's last three temporary directories
