"""The small interfaces the services depend on; adapters implement them, fakes too in unit tests.

``objects`` (S3), ``messaging`` (Kafka, webhooks), ``store`` (MongoDB: events, per-frame
documents, notices), ``frames`` (extractor, detector), ``telemetry`` (metrics).
"""

from video_runner.ports.frames import Detector, FrameSource, Image
from video_runner.ports.messaging import (
    ConsumedOffsets,
    Delivery,
    Message,
    NoticeFeed,
    NoticeLog,
    Publisher,
    RawPublisher,
    WebhookSender,
)
from video_runner.ports.objects import ObjectStore
from video_runner.ports.store import EventStore, NoticeStore, PredictionStore, ResultStore
from video_runner.ports.telemetry import Telemetry

__all__ = [
    "ConsumedOffsets",
    "Delivery",
    "Detector",
    "EventStore",
    "FrameSource",
    "Image",
    "Message",
    "NoticeFeed",
    "NoticeLog",
    "NoticeStore",
    "ObjectStore",
    "PredictionStore",
    "Publisher",
    "RawPublisher",
    "ResultStore",
    "Telemetry",
    "WebhookSender",
]
