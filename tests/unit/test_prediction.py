"""The typed prediction and its mapping from stored documents."""

from datetime import UTC, datetime

from video_runner.adapters.mongo import new_event_document
from video_runner.adapters.mongo.documents import frame_result_of, prediction_of, result_document
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.status import Status

NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def test_a_document_from_an_older_version_with_only_id_and_status_loads_with_defaults():
    prediction = prediction_of({"_id": "ev-1", "status": "processing"})
    assert prediction == Prediction(event_id="ev-1", status=Status.PROCESSING)


def test_fields_the_type_does_not_know_stay_in_the_document_view():
    document = {**new_event_document("ev-1", {"future_field": 7}, NOON)}
    assert prediction_of(document).as_document() == document


def test_a_processing_event_with_its_total_set_is_over_for_the_video_path():
    assert Prediction("ev-1", Status.PROCESSING, total_frames=3).video_path_over


def test_an_event_that_never_recorded_its_partitions_counts_over_one():
    assert (
        prediction_of(
            {"_id": "ev-1", "status": "ready", "results_partitions": 0}
        ).results_partitions
        == 1
    )


def test_the_last_activity_is_the_latest_of_counter_extraction_and_write():
    later = datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
    prediction = Prediction("ev-1", Status.PROCESSING, extracted_at=NOON, updated_at=NOON)
    assert prediction.last_activity(ResultCounts(1, 0, later)) == later


def test_the_output_bucket_is_the_source_videos_bucket():
    prediction = prediction_of(
        {"_id": "ev-1", "status": "predictable", "source": {"bucket": "clips", "object": "a.mp4"}}
    )
    assert prediction.output_bucket("videos") == "clips"


def test_a_failed_event_that_stopped_half_way_purges_the_chunks_it_published():
    assert Prediction("ev-1", Status.FAILED, frames_published=65).task_pages == 2


def test_live_counts_appear_in_the_document_view():
    prediction = Prediction("ev-1", Status.PROCESSING, document={"_id": "ev-1"})
    view = prediction.with_progress(ResultCounts(4, 1)).as_document()
    assert view == {"_id": "ev-1", "results_received": 4, "failed_frames": 1}


def test_a_stored_result_keeps_its_detections_as_one_json_string_and_reads_back_equal():
    """The result document holds the objects as compact JSON text (the store never queries
    inside them), and reads back to the same FrameResult, floats and key order included."""
    objects = [{"class": "person", "box": [10.5, 20.25, 110.0, 220.0], "conf": 0.87, "x": None}]
    result = FrameResult(frame_id=5, timestamp_ms=200, objects=objects, model="m")
    document = result_document("ev-1", result, datetime(2026, 1, 1, tzinfo=UTC))
    assert "objects" not in document
    assert document["objects_json"].startswith('[{"class":"person","box":[10.5,')
    assert frame_result_of(document) == result
    assert list(frame_result_of(document).objects[0]) == ["class", "box", "conf", "x"]


def test_a_result_stored_with_an_objects_array_by_an_older_version_still_reads():
    """Documents written before the JSON text keep their ``objects`` array: read as before."""
    document = {"_id": "ev-1/0", "frame_id": 0, "timestamp_ms": 0, "objects": [{"class": "car"}]}
    assert frame_result_of(document).objects == [{"class": "car"}]
