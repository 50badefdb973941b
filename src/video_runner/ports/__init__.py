"""The small interfaces the services depend on; adapters implement them, fakes too in unit tests.

``objects`` (S3: objects, streams, sweeps), ``messaging`` (Kafka, webhooks), ``store`` (MongoDB:
events, per-frame documents, notices, versions), ``frames`` (extractor, detector, tracker),
``telemetry`` (metrics).
"""

from video_runner.ports.frames import (
    BoxTracker,
    Detector,
    Fetch,
    FrameSource,
    Image,
    SegmentSource,
    TrackerFactory,
)
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
from video_runner.ports.objects import ObjectRanges, ObjectStore, ObjectStream, ObjectSweeper
from video_runner.ports.store import (
    EventStore,
    NoticeStore,
    PredictionStore,
    ResultStore,
    VersionStore,
)
from video_runner.ports.telemetry import Telemetry

__all__ = [
    "BoxTracker",
    "ConsumedOffsets",
    "Delivery",
    "Detector",
    "EventStore",
    "Fetch",
    "FrameSource",
    "Image",
    "Message",
    "NoticeFeed",
    "NoticeLog",
    "NoticeStore",
    "ObjectRanges",
    "ObjectStore",
    "ObjectStream",
    "ObjectSweeper",
    "PredictionStore",
    "Publisher",
    "RawPublisher",
    "ResultStore",
    "SegmentSource",
    "Telemetry",
    "TrackerFactory",
    "VersionStore",
    "WebhookSender",
]
