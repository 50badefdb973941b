"""The typed prediction and its mapping from stored documents."""

from datetime import UTC, datetime

from video_runner.adapters.mongo import new_event_document
from video_runner.adapters.mongo.documents import prediction_of
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import ResultCounts
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
