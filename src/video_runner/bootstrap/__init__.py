"""The composition root: settings -> adapters -> services -> runtime. The only package that
knows them all; it builds, the runtime runs."""

from video_runner.bootstrap.clients import (
    consumer_loop,
    detector,
    ensure_topics_of,
    frame_source,
    group_instance_id,
    kafka_connection,
    notice_feed,
    object_store,
    prediction_store,
    publisher,
    secrets_of,
    topics_of,
    trackers,
    video_writer,
)
from video_runner.bootstrap.configs import retry_policy, work_dir
from video_runner.bootstrap.processes import Inference, Outbox, Runner

__all__ = [
    "Inference",
    "Outbox",
    "Runner",
    "consumer_loop",
    "detector",
    "ensure_topics_of",
    "frame_source",
    "group_instance_id",
    "kafka_connection",
    "notice_feed",
    "object_store",
    "prediction_store",
    "publisher",
    "retry_policy",
    "secrets_of",
    "topics_of",
    "trackers",
    "video_writer",
    "work_dir",
]
