"""The prediction document's state machine, and how its progress reads to a person."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from video_runner.domain.progress import expected_frames, progress_percent, status_view
from video_runner.domain.status import Status, can_move, is_finished, sources_of

ALLOWED = {
    (Status.PROCESSING, Status.PREDICTABLE),
    (Status.PROCESSING, Status.FAILED),
    (Status.PREDICTABLE, Status.READY),
}


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_only_the_three_documented_transitions_are_allowed(current, target):
    """processing -> predictable | failed and predictable -> ready; nothing else, no self-loop."""
    assert can_move(current, target) is ((current, target) in ALLOWED)


def test_terminal_states_never_move_again():
    """ready and failed have no way out, so a redelivery cannot undo them."""
    for terminal in (Status.READY, Status.FAILED):
        assert not any(can_move(terminal, target) for target in Status)


def test_sources_of_a_target_are_the_conditions_of_the_conditional_update():
    """The states a conditional update may start from, per target."""
    assert sources_of(Status.PREDICTABLE) == [Status.PROCESSING]
    assert sources_of(Status.FAILED) == [Status.PROCESSING]
    assert sources_of(Status.READY) == [Status.PREDICTABLE]
    assert sources_of(Status.PROCESSING) == []


def test_a_predictable_event_cannot_fail_any_more():
    """Once every result is in, only ready follows: a late timeout must not fail it."""
    assert not can_move(Status.PREDICTABLE, Status.FAILED)
    assert Status.PREDICTABLE not in sources_of(Status.FAILED)


def test_finished_states_are_the_ones_the_video_path_treats_as_duplicates():
    """predictable, ready and failed are finished; processing is not."""
    assert [s for s in Status if is_finished(s)] == [
        Status.PREDICTABLE,
        Status.READY,
        Status.FAILED,
    ]


def test_status_values_are_the_strings_stored_in_mongodb():
    """The enum compares equal to its stored string, both ways."""
    assert Status("processing") is Status.PROCESSING
    assert Status.READY == "ready"


def test_progress_is_full_once_predictable_or_ready():
    """100 % regardless of the counters."""
    assert progress_percent({"status": "predictable"}) == 100.0
    assert progress_percent({"status": "ready", "total_frames": 10}) == 100.0


def test_progress_is_zero_when_nothing_says_how_many_frames_to_expect():
    """No total and no container frame count: 0 %, never a division by zero."""
    assert progress_percent({"status": "processing"}) == 0.0
    assert progress_percent({"status": "processing", "total_frames": 0}) == 0.0


def test_progress_is_estimated_from_the_container_before_extraction_ends():
    """100 decoded frames sampled every 5th: 20 expected; 10 published and 5 received = 37.5 %."""
    document = {
        "status": "processing",
        "video": {"frame_count": 100},
        "sampling": {"every_n": 5},
        "frames_published": 10,
        "results_received": 5,
    }
    assert expected_frames(document) == 20
    assert progress_percent(document) == 37.5


def test_the_exact_total_wins_over_the_estimate_and_counters_are_capped():
    """total_frames is used once known; counters above it count as the total."""
    document = {
        "status": "processing",
        "total_frames": 7,
        "video": {"frame_count": 100},
        "sampling": {"every_n": 5},
        "frames_published": 9,
        "results_received": 3,
    }
    assert expected_frames(document) == 7
    assert progress_percent(document) == round(100 * (7 + 3) / 14, 1)


def test_expected_frames_rounds_a_partial_sampling_step_up():
    """101 frames sampled every 5th keep frames 0..100: 21 of them."""
    assert expected_frames({"video": {"frame_count": 101}, "sampling": {"every_n": 5}}) == 21


def test_status_view_is_the_public_json_friendly_view_of_a_document():
    """Counters default to 0, times are ISO strings, absent fields are None."""
    created = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    view = status_view(
        {
            "_id": "ev-1",
            "status": "processing",
            "total_frames": None,
            "video": {"frame_count": 50},
            "sampling": {"every_n": 5},
            "frames_published": 10,
            "results_received": None,
            "created_at": created,
            "updated_at": created,
            "lease_owner": "not shown",
        }
    )
    assert view == {
        "event_id": "ev-1",
        "status": "processing",
        "progress_percent": 50.0,
        "frames_published": 10,
        "results_received": 0,
        "total_frames": None,
        "expected_frames": 10,
        "failed_frames": 0,
        "video": {"frame_count": 50},
        "source": None,
        "error": None,
        "output_s3": None,
        "created_at": "2024-05-01T10:00:00+00:00",
        "updated_at": "2024-05-01T10:00:00+00:00",
        "ready_at": None,
    }


def test_status_view_of_a_failed_event_shows_its_error():
    """The error code and message are passed through for the caller to read."""
    error = {"code": "missing_object", "message": "not found"}
    view = status_view({"_id": "ev-2", "status": "failed", "error": error})
    assert view["status"] == "failed"
    assert view["error"] == error
    assert view["progress_percent"] == 0.0


def test_a_video_cut_into_segments_shows_its_planned_total_and_the_segments_done():
    """Before ``total_frames``, a segmented video's expected frames are the plan's, exact, and
    publishing counts in segments done: 3 of 4 is three quarters of the first half."""
    document = {
        "_id": "ev-1",
        "status": "processing",
        "segments": {"count": 4, "frames": 400, "done": 3},
        "video": {"frame_count": 1999},
        "sampling": {"every_n": 5},
        "results_received": 100,
    }
    view = status_view(document)
    assert view["expected_frames"] == 400
    assert view["segments"] == {"count": 4, "frames": 400, "done": 3}
    assert view["progress_percent"] == 50.0
