"""Each service's config, made from ``Settings`` and nowhere else.

The configs have no defaults of their own for what a setting decides: ``settings.py`` states every
default once, and the services, the processes and the unit tests all get their configs here (a
test changes a field with ``dataclasses.replace``, starting from what production would run).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from video_runner.contracts import ResultLimits
from video_runner.domain.retry_policy import RetryPolicy
from video_runner.services.frame_retention import RetentionConfig
from video_runner.services.frame_upload import FrameUpload
from video_runner.services.inference import InferenceConfig
from video_runner.services.notices import NoticeConfig
from video_runner.services.outbox_s3 import OutboxConfig
from video_runner.services.reinfer_publication import ReinferConfig
from video_runner.services.results_handler import ResultsConfig
from video_runner.services.video_handler import VideoHandlerConfig
from video_runner.services.video_segments import SegmentsConfig
from video_runner.services.webhooks import WebhookConfig
from video_runner.settings import Settings


def work_dir(settings: Settings) -> Path:
    return Path(settings.work_dir or Path(tempfile.gettempdir()) / "video-runner")


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy of the consumers, dead-lettering, start-up and periodic jobs."""
    return RetryPolicy(
        initial_s=settings.retry_initial_s,
        max_s=settings.retry_max_s,
        max_attempts=settings.retry_max_attempts,
    )


def results_config(settings: Settings) -> ResultsConfig:
    return ResultsConfig(
        tasks_topic=settings.topic_inference_tasks,
        dlq_suffix=settings.dlq_suffix,
        notices_topic=settings.topic_predictable_events,
        inference_group=settings.group_inference,
        results_topic=settings.topic_inference_results,
        results_group=settings.group_results,
        max_failed_ratio=settings.max_failed_frame_ratio,
        result_deadline_s=settings.result_deadline_s,
        reaper_max_attempts=settings.reaper_max_attempts,
        recount_after_s=settings.recount_after_s,
        max_message_bytes=settings.max_message_bytes,
        dlq_max_bytes=settings.dlq_max_bytes,
        limits=ResultLimits(settings.max_objects_per_frame, settings.max_class_name_length),
    )


def video_handler_config(settings: Settings) -> VideoHandlerConfig:
    return VideoHandlerConfig(
        videos_bucket=settings.bucket_videos,
        frames_bucket=settings.bucket_frames,
        tasks_topic=settings.topic_inference_tasks,
        results_topic=settings.topic_inference_results,
        dlq_suffix=settings.dlq_suffix,
        sampling=settings.sampling,
        preprocessing=settings.preprocessing,
        limits=settings.limits,
        work_dir=work_dir(settings),
        upload_concurrency=settings.upload_concurrency,
        max_message_bytes=settings.max_message_bytes,
        dlq_max_bytes=settings.dlq_max_bytes,
        allowed_buckets=settings.source_buckets,
        webhook_hosts=settings.webhook_hosts,
        extraction_stale_s=settings.extraction_stale_s,
        publish_linger_s=settings.publish_linger_ms / 1000,
    )


def segments_config(settings: Settings) -> SegmentsConfig:
    return SegmentsConfig(
        topic=settings.topic_video_segments,
        seconds=settings.segment_seconds,
        tasks_topic=settings.topic_inference_tasks,
        max_video_bytes=settings.limits.max_bytes,
        upload=FrameUpload(
            settings.bucket_frames, settings.upload_concurrency, settings.publish_linger_ms / 1000
        ),
        default_every_n=settings.sampling.every_n,
    )


def inference_config(settings: Settings) -> InferenceConfig:
    return InferenceConfig(
        results_topic=settings.topic_inference_results, dlq_suffix=settings.dlq_suffix
    )


def outbox_config(settings: Settings) -> OutboxConfig:
    return OutboxConfig(
        default_bucket=settings.bucket_videos,
        notice_grace_s=settings.outbox_notice_grace_s,
        keep_frame_documents=settings.keep_frame_documents,
        failed_retention_s=settings.failed_retention_s,
        work_dir=work_dir(settings),
        track_default=settings.track_default,
        early_merges=settings.outbox_early_merges,
        merge_poll_s=settings.outbox_merge_poll_s,
    )


def notice_config(settings: Settings) -> NoticeConfig:
    return NoticeConfig(
        topic=settings.topic_prediction_events,
        grace_s=settings.completion_notice_grace_s,
        webhooks=webhook_config(settings),
    )


def webhook_config(settings: Settings) -> WebhookConfig:
    secret = settings.webhook_secret
    return WebhookConfig(
        secret=None if secret is None else secret.get_secret_value().encode(),
        max_attempts=settings.webhook_max_attempts,
        retry_initial_s=settings.webhook_retry_initial_s,
        retry_max_s=settings.webhook_retry_max_s,
        concurrency=settings.webhook_concurrency,
    )


def reinfer_config(settings: Settings) -> ReinferConfig:
    return ReinferConfig(
        frames_bucket=settings.bucket_frames,
        tasks_topic=settings.topic_inference_tasks,
        results_topic=settings.topic_inference_results,
        dlq_suffix=settings.dlq_suffix,
        dlq_max_bytes=settings.dlq_max_bytes,
        max_message_bytes=settings.max_message_bytes,
    )


def retention_config(settings: Settings) -> RetentionConfig:
    return RetentionConfig(
        frames_bucket=settings.bucket_frames, retention_s=settings.frames_retention_s
    )
