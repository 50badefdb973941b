"""Settings -> adapters: every client a process or a command builds, configured one way."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from video_runner.adapters.detectors import build_detector
from video_runner.adapters.h264 import H264Writer
from video_runner.adapters.kafka import (
    ConsumerLoop,
    KafkaConnection,
    KafkaNoticeFeed,
    KafkaPublisher,
    RecordHandler,
    ensure_topics,
)
from video_runner.adapters.mongo import MongoPredictionStore
from video_runner.adapters.s3 import S3ObjectStore
from video_runner.adapters.trackers import norfair_trackers
from video_runner.bootstrap.configs import retry_policy
from video_runner.domain.params import Preprocessing, Sampling
from video_runner.extraction.frame_source import VideoFrameSource
from video_runner.ports import Detector, TrackerFactory
from video_runner.settings import Settings


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for the log redaction filter."""
    values = [settings.mongo_uri.get_secret_value()]
    values.extend(
        secret.get_secret_value()
        for secret in (
            settings.s3_secret_access_key,
            settings.kafka_sasl_password,
            settings.webhook_secret,
        )
        if secret is not None
    )
    # The password inside a MongoDB URI is what must not leak; the URI as a whole too.
    uri = values[0]
    if "@" in uri and ":" in uri.split("@", 1)[0].split("//", 1)[-1]:
        values.append(uri.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1])
    return values


def topics_of(settings: Settings) -> list[str]:
    """Every topic the system uses, dead-letter queues included."""
    main = [
        settings.topic_outbox_events,
        settings.topic_inference_tasks,
        settings.topic_inference_results,
        settings.topic_video_segments,
    ]
    return [
        *main,
        settings.topic_predictable_events,
        settings.topic_prediction_events,
        *(settings.dlq_topic(topic) for topic in main),
    ]


async def ensure_topics_of(settings: Settings, role: str) -> None:
    await ensure_topics(
        kafka_connection(settings, role),
        topics_of(settings),
        partitions=settings.kafka_topic_partitions,
        replication=settings.kafka_topic_replication,
        configs=settings.topic_configs,
    )


def kafka_connection(settings: Settings, role: str) -> KafkaConnection:
    password = settings.kafka_sasl_password
    return KafkaConnection(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=None if password is None else password.get_secret_value(),
        ssl_cafile=settings.kafka_ssl_cafile,
        client_id=f"{settings.kafka_client_id}-{role}",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


def publisher(settings: Settings, role: str) -> KafkaPublisher:
    return KafkaPublisher(kafka_connection(settings, role))


def object_store(settings: Settings) -> S3ObjectStore:
    secret = settings.s3_secret_access_key
    verify: bool | str = settings.s3_ca_bundle or settings.s3_verify_tls
    return S3ObjectStore.connect(
        endpoint_url=settings.s3_endpoint_url,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=None if secret is None else secret.get_secret_value(),
        region=settings.s3_region,
        verify=verify,
        connect_timeout_s=settings.s3_connect_timeout_s,
        read_timeout_s=settings.s3_read_timeout_s,
    )


def prediction_store(settings: Settings) -> MongoPredictionStore:
    # The store's collections by role (adapters/mongo).
    collections = {
        "events": settings.mongo_collection,
        "task_pages": settings.mongo_task_pages_collection,
        "results": settings.mongo_results_collection,
        "progress": settings.mongo_progress_collection,
        "claims": settings.mongo_claims_collection,
        "notices": settings.mongo_notices_collection,
    }
    return MongoPredictionStore.connect(
        settings.mongo_uri.get_secret_value(),
        settings.mongo_db,
        collections,
        timeout_ms=settings.mongo_timeout_ms,
    )


def frame_source(
    settings: Settings,
    *,
    sampling: Sampling | None = None,
    preprocessing: Preprocessing | None = None,
) -> VideoFrameSource:
    """The settings' extractor; ``extract`` passes its own sampling and JPEG quality."""
    return VideoFrameSource(
        settings.sampling if sampling is None else sampling,
        settings.preprocessing if preprocessing is None else preprocessing,
        settings.limits,
        workers=settings.extract_workers,
    )


def detector(settings: Settings) -> Detector:
    return build_detector(
        settings.detector,
        onnx_model_path=settings.onnx_model_path,
        model_dir=settings.model_dir,
        confidence=settings.onnx_confidence,
        iou=settings.onnx_iou,
        threads=settings.onnx_threads,
        providers=settings.execution_providers,
    )


def trackers(settings: Settings) -> TrackerFactory:
    return norfair_trackers(min_iou=settings.track_min_iou, lost_frames=settings.track_lost_frames)


def notice_feed(settings: Settings, role: str) -> KafkaNoticeFeed:
    """A follower of the completion notices' topic (``submit --wait``)."""
    return KafkaNoticeFeed(kafka_connection(settings, role))


def video_writer(path: Path, rate: Fraction) -> H264Writer:
    """An H.264 MP4 writer of annotated frames (``render``)."""
    return H264Writer(path, rate)


def consumer_loop(
    settings: Settings,
    role: str,
    *,
    topic: str,
    group_id: str,
    handler: RecordHandler,
    max_in_flight: int,
    batch_size: int = 0,
) -> ConsumerLoop:
    return ConsumerLoop(
        connection=kafka_connection(settings, role),
        topic=topic,
        group_id=group_id,
        handler=handler,
        max_in_flight=max_in_flight,
        batch_size=batch_size,
        batch_wait_ms=settings.results_batch_wait_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        retry=retry_policy(settings),
        group_instance_id=group_instance_id(settings, group_id),
    )


def group_instance_id(settings: Settings, group_id: str) -> str | None:
    """This replica's static member id in ``group_id`` (one process joins several groups)."""
    base = settings.kafka_group_instance_id
    return None if base is None else f"{base}-{group_id}"
