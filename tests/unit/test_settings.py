"""Typed settings read from the environment, with the seed's defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from video_runner.settings import load_settings


def test_the_defaults_are_the_seed_systems_names_and_parameters(monkeypatch):
    """Topics, groups, buckets, database and preprocessing default to the seed's values."""
    for name in ("TOPIC_OUTBOX_EVENTS", "GROUP_RUNNER", "BUCKET_FRAMES", "MONGO_DB"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.topic_outbox_events == "outbox_events"
    assert settings.topic_inference_tasks == "inference_tasks"
    assert settings.topic_inference_results == "inference_results"
    assert settings.group_runner == "runner-group"
    assert settings.group_results == "runner-results-group"
    assert (settings.bucket_videos, settings.bucket_frames) == ("videos", "frames")
    assert (settings.mongo_db, settings.mongo_collection) == ("runner_db", "runner_predictions")
    assert settings.sampling.every_n == 5
    assert (settings.preprocessing.blur_ksize, settings.preprocessing.alpha) == (3, 1.3)
    assert settings.preprocessing.beta == 5.0
    assert settings.http_port == 8002


def test_the_environment_sets_values_by_their_upper_case_names(monkeypatch):
    """KAFKA_BOOTSTRAP_SERVERS, FRAME_EVERY_N... are read and typed."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("FRAME_EVERY_N", "10")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "hidden-value")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "broker:9093"
    assert settings.sampling.every_n == 10
    assert "hidden-value" not in repr(settings)


@pytest.mark.parametrize("word", ["", "none", "OFF"])
def test_a_limit_is_switched_off_from_the_environment_with_an_empty_or_none_value(
    monkeypatch, word
):
    """Limits and the S3 endpoint can be unset from the environment, where None cannot be."""
    monkeypatch.setenv("MAX_VIDEO_BYTES", word)
    monkeypatch.setenv("S3_ENDPOINT_URL", word)
    settings = load_settings()
    assert settings.limits.max_bytes is None
    assert settings.s3_endpoint_url is None


def test_a_value_of_the_wrong_type_is_a_clear_error(monkeypatch):
    """FRAME_EVERY_N=0 is refused when the settings are read, not later."""
    monkeypatch.setenv("FRAME_EVERY_N", "0")
    with pytest.raises(ValidationError, match="frame_every_n"):
        load_settings()


def test_extract_workers_sets_the_threads_and_the_decoder_lanes_of_every_extraction(monkeypatch):
    """EXTRACT_WORKERS=3: three JPEG threads and three lanes for a video of independent GOPs."""
    from video_runner.bootstrap.clients import frame_source

    monkeypatch.setenv("EXTRACT_WORKERS", "3")
    source = frame_source(load_settings())
    assert (source.workers, source.lanes) == (3, 3)
    monkeypatch.setenv("EXTRACT_WORKERS", "0")
    with pytest.raises(ValidationError, match="extract_workers"):
        load_settings()
