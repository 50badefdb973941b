"""Every service config is made from the settings, with nothing of its own in between."""

from __future__ import annotations

import dataclasses

import pytest

from video_runner.bootstrap import configs
from video_runner.settings import load_settings

#: Settings changed from their defaults, each to a value no default has: a config field wired
#: to the wrong setting, or left at a default of its own, shows up as a mismatch.
CHANGED = {
    "max_failed_frame_ratio": 0.37,
    "dlq_max_bytes": 123_457,
    "max_message_bytes": 234_567,
    "result_deadline_s": 91.0,
    "reaper_max_attempts": 7,
    "recount_after_s": 41.0,
    "upload_concurrency": 5,
    "extraction_stale_s": 13.0,
    "outbox_notice_grace_s": 17.0,
    "failed_retention_s": 3600.0,
    "keep_frame_documents": True,
    "completion_notice_grace_s": 130.0,
    "webhook_max_attempts": 4,
    "webhook_retry_initial_s": 0.7,
    "webhook_retry_max_s": 9.0,
    "webhook_concurrency": 3,
    "max_objects_per_frame": 77,
    "max_class_name_length": 64,
    "dlq_suffix": ".dead",
    "topic_predictable_events": "t-predictable",
    "topic_inference_results": "t-results",
    "topic_inference_tasks": "t-tasks",
    "topic_prediction_events": "t-notices",
    "track_default": True,
    "bucket_frames": "f-frames",
    "frames_retention_s": 4321.0,
    "retry_initial_s": 0.3,
    "retry_max_s": 7.0,
    "retry_max_attempts": 5,
}

#: Config field -> the setting it comes from, per config.
EXPECTED = {
    configs.results_config: {
        "max_failed_ratio": "max_failed_frame_ratio",
        "dlq_max_bytes": "dlq_max_bytes",
        "max_message_bytes": "max_message_bytes",
        "result_deadline_s": "result_deadline_s",
        "reaper_max_attempts": "reaper_max_attempts",
        "recount_after_s": "recount_after_s",
        "dlq_suffix": "dlq_suffix",
        "notices_topic": "topic_predictable_events",
        "results_topic": "topic_inference_results",
        "tasks_topic": "topic_inference_tasks",
    },
    configs.video_handler_config: {
        "dlq_max_bytes": "dlq_max_bytes",
        "max_message_bytes": "max_message_bytes",
        "upload_concurrency": "upload_concurrency",
        "extraction_stale_s": "extraction_stale_s",
        "dlq_suffix": "dlq_suffix",
        "tasks_topic": "topic_inference_tasks",
        "results_topic": "topic_inference_results",
    },
    configs.outbox_config: {
        "notice_grace_s": "outbox_notice_grace_s",
        "failed_retention_s": "failed_retention_s",
        "keep_frame_documents": "keep_frame_documents",
        "track_default": "track_default",
    },
    configs.notice_config: {
        "topic": "topic_prediction_events",
        "grace_s": "completion_notice_grace_s",
    },
    configs.webhook_config: {
        "max_attempts": "webhook_max_attempts",
        "retry_initial_s": "webhook_retry_initial_s",
        "retry_max_s": "webhook_retry_max_s",
        "concurrency": "webhook_concurrency",
    },
    configs.reinfer_config: {
        "frames_bucket": "bucket_frames",
        "tasks_topic": "topic_inference_tasks",
        "results_topic": "topic_inference_results",
        "dlq_suffix": "dlq_suffix",
        "dlq_max_bytes": "dlq_max_bytes",
        "max_message_bytes": "max_message_bytes",
    },
    configs.retention_config: {
        "frames_bucket": "bucket_frames",
        "retention_s": "frames_retention_s",
    },
    configs.inference_config: {
        "results_topic": "topic_inference_results",
        "dlq_suffix": "dlq_suffix",
    },
    configs.retry_policy: {
        "initial_s": "retry_initial_s",
        "max_s": "retry_max_s",
        "max_attempts": "retry_max_attempts",
    },
}


@pytest.mark.parametrize("build", list(EXPECTED), ids=lambda build: build.__name__)
def test_each_config_field_carries_its_setting(build):
    """With every setting moved off its default, each config field holds its own setting."""
    config = build(load_settings(**CHANGED))
    for field, setting in EXPECTED[build].items():
        assert getattr(config, field) == CHANGED[setting], field


def test_the_result_limits_come_from_the_settings():
    """Objects per frame and the longest class name are the settings'."""
    limits = configs.results_config(load_settings(**CHANGED)).limits
    assert (limits.max_objects, limits.max_class_name) == (77, 64)


@pytest.mark.parametrize("build", list(EXPECTED), ids=lambda build: build.__name__)
def test_no_config_has_a_default_of_its_own_for_what_a_setting_decides(build):
    """A field with a default can drift from settings.py: only fixed tunings keep one."""
    config = build(load_settings())
    defaulted = {
        f.name
        for f in dataclasses.fields(config)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    assert defaulted <= {"publish_batch"}
