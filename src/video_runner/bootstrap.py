"""The composition root: settings -> adapters -> services. The only module that knows them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from video_runner.adapters.detectors import build_detector
from video_runner.adapters.kafka import (
    ConsumerLoop,
    GroupOffsets,
    KafkaConnection,
    KafkaPublisher,
    RecordHandler,
    ensure_topics,
)
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.adapters.mongo import MongoPredictionStore
from video_runner.adapters.s3 import S3ObjectStore
from video_runner.adapters.video import VideoFrameSource
from video_runner.contracts import ResultLimits
from video_runner.domain.backoff import backoff_delay
from video_runner.errors import ConfigurationError, RetriableError
from video_runner.ports import Detector
from video_runner.services.inference import BatchingDetector, InferenceConfig, InferenceWorker
from video_runner.services.outbox_s3 import OutboxConfig, OutboxS3
from video_runner.services.repair import Reaper, Reconciler
from video_runner.services.results_path import (
    Completion,
    ResultsConfig,
    ResultsPath,
)
from video_runner.services.video_path import VideoPath, VideoPathConfig
from video_runner.services.work_dir import sweep_work_dir
from video_runner.settings import Settings

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
#: A poll loop silent for this long is reported down (it polls every fraction of a second).
POLL_STALL_S = 60.0


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for the log redaction filter."""
    values = [settings.mongo_uri.get_secret_value()]
    values.extend(
        secret.get_secret_value()
        for secret in (settings.s3_secret_access_key, settings.kafka_sasl_password)
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
    ]
    return [
        *main,
        settings.topic_predictable_events,
        *(settings.dlq_topic(topic) for topic in main),
    ]


async def ensure_topics_of(settings: Settings, role: str) -> None:
    await ensure_topics(
        kafka_connection(settings, role),
        topics_of(settings),
        partitions=settings.kafka_topic_partitions,
        replication=settings.kafka_topic_replication,
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
    return MongoPredictionStore.connect(
        settings.mongo_uri.get_secret_value(),
        settings.mongo_db,
        settings.mongo_collections,
        timeout_ms=settings.mongo_timeout_ms,
    )


def frame_source(settings: Settings) -> VideoFrameSource:
    return VideoFrameSource(settings.sampling, settings.preprocessing, settings.limits)


def detector(settings: Settings) -> Detector:
    return build_detector(
        settings.detector,
        onnx_model_path=settings.onnx_model_path,
        confidence=settings.onnx_confidence,
        iou=settings.onnx_iou,
    )


def work_dir(settings: Settings) -> Path:
    return Path(settings.work_dir or Path(tempfile.gettempdir()) / "video-runner")


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
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=settings.retry_max_s,
        group_instance_id=group_instance_id(settings, group_id),
    )


def group_instance_id(settings: Settings, group_id: str) -> str | None:
    """This replica's static member id in ``group_id`` (one process joins several groups)."""
    base = settings.kafka_group_instance_id
    return None if base is None else f"{base}-{group_id}"


async def timed_check(check: Check, timeout_s: float) -> dict[str, Any]:
    """Run one dependency check; report its status and latency, never raise."""
    started = time.monotonic()
    error: str | None
    try:
        await asyncio.wait_for(check(), timeout=timeout_s)
    except TimeoutError:
        status, error = "down", f"no answer within {timeout_s:.0f} s"
    except Exception as exc:  # noqa: BLE001 - a health check reports whatever went wrong
        status, error = "down", f"{type(exc).__name__}: {exc}"
    else:
        status, error = "up", None
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    report: dict[str, Any] = {"status": status, "latency_ms": latency_ms}
    if error is not None:
        report["error"] = error[:300]
    return report


@dataclass
class Service:
    """A running process's parts that the HTTP surface and the CLI need."""

    role: str
    settings: Settings
    telemetry: PrometheusTelemetry
    checks: dict[str, Check]
    store: MongoPredictionStore | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    startup_error: str | None = None
    loops: list[ConsumerLoop] = field(default_factory=list)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        names = list(self.checks)
        reports = await asyncio.gather(*(timed_check(self.checks[n], 3.0) for n in names))
        checks = dict(zip(names, reports, strict=True))
        for loop in self.loops:
            # A consumer that stopped polling (the aiokafka hang after a broker restart) is as
            # bad as a broker that is down: the watchdog reports it.
            idle_s = time.monotonic() - loop.stats.last_poll
            healthy = not self.started.is_set() or idle_s < POLL_STALL_S
            checks[f"consumer:{loop.topic}"] = {
                "status": "up" if healthy else "down",
                "in_flight": loop.stats.in_flight,
                "seconds_since_poll": round(idle_s, 1),
            }
        reports = list(checks.values())
        ready = self.started.is_set() and all(r["status"] == "up" for r in reports)
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "service": self.role,
            "started": self.started.is_set(),
            "checks": checks,
        }
        if self.startup_error:
            body["startup_error"] = self.startup_error
        return ready, body


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def start_with_retries(
    what: str, start: Callable[[], Awaitable[None]], stop: asyncio.Event, service: Service
) -> bool:
    """Start a dependency-facing part, retrying with backoff while a dependency is down.

    A configuration error (a wrong secret) is raised at once: retrying cannot fix it.
    Returns False if asked to stop before it started.
    """
    attempt = 0
    while not stop.is_set():
        try:
            await start()
        except (RetriableError, OSError) as exc:
            delay = backoff_delay(attempt, 0.5, 10.0)
            service.startup_error = f"{what}: {exc}"
            log.warning(
                "dependency not ready, retrying",
                extra={"part": what, "error": str(exc), "delay_s": round(delay, 1)},
            )
            attempt += 1
            await sleep_unless(stop, delay)
        else:
            return True
    return False


async def periodic(
    name: str, interval_s: float, job: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Run ``job`` every ``interval_s`` until ``stop``; failures are logged, never fatal."""
    while not stop.is_set():
        try:
            await job()
        except (RetriableError, ConfigurationError) as exc:
            log.warning("periodic job failed", extra={"job": name, "error": str(exc)})
        except Exception:
            log.exception("periodic job crashed", extra={"job": name})
        await sleep_unless(stop, interval_s)


class Runner:
    """The runner service: video path, results path, reconciler and reaper in one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = PrometheusTelemetry()
        self.store = prediction_store(settings)
        self.objects = object_store(settings)
        # The runner sends explicit batches (publish_many): lingering would only add latency.
        self.publisher = KafkaPublisher(kafka_connection(settings, "runner"), linger_ms=0)
        results_config = ResultsConfig(
            tasks_topic=settings.topic_inference_tasks,
            dlq_suffix=settings.dlq_suffix,
            notices_topic=settings.topic_predictable_events,
            inference_group=settings.group_inference,
            max_failed_ratio=settings.max_failed_frame_ratio,
            result_deadline_s=settings.result_deadline_s,
            reaper_max_attempts=settings.reaper_max_attempts,
            recount_after_s=settings.recount_after_s,
            max_message_bytes=settings.max_message_bytes,
            dlq_max_bytes=settings.dlq_max_bytes,
            limits=ResultLimits(settings.max_objects_per_frame, settings.max_class_name_length),
        )
        self.completion = Completion(results_config, self.store, self.publisher, self.telemetry)
        self.video_path = VideoPath(
            VideoPathConfig(
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
            ),
            store=self.store,
            objects=self.objects,
            publisher=self.publisher,
            frames=frame_source(settings),
            telemetry=self.telemetry,
            on_extracted=self.completion.check,
        )
        self.results_path = ResultsPath(
            results_config,
            store=self.store,
            publisher=self.publisher,
            completion=self.completion,
            telemetry=self.telemetry,
        )
        self.reconciler = Reconciler(results_config, self.store, self.completion)
        self.reaper = Reaper(
            results_config,
            store=self.store,
            publisher=self.publisher,
            offsets=GroupOffsets(kafka_connection(settings, "runner")),
            telemetry=self.telemetry,
        )
        self.events_loop = consumer_loop(
            settings,
            "runner",
            topic=settings.topic_outbox_events,
            group_id=settings.group_runner,
            handler=self.video_path,
            max_in_flight=settings.max_videos_in_flight,
        )
        self.results_loop = consumer_loop(
            settings,
            "runner",
            topic=settings.topic_inference_results,
            group_id=settings.group_results,
            handler=self.results_path,
            max_in_flight=1,
            batch_size=settings.results_batch_size,
        )
        self.service = Service(
            role="runner",
            settings=settings,
            telemetry=self.telemetry,
            checks={
                "kafka": self.publisher.ping,
                "s3": self.objects.ping,
                "mongodb": self.store.ping,
            },
            store=self.store,
            loops=[self.events_loop, self.results_loop],
        )

    async def _prepare(self) -> None:
        swept = sweep_work_dir(work_dir(self.settings))
        if swept:
            log.info("work directory swept", extra={"files": swept})
        await self.store.ensure_indexes()
        await self.objects.ping()
        await self.objects.ensure_bucket(self.settings.bucket_frames)
        await ensure_topics_of(self.settings, "runner")
        await self.publisher.start()

    async def run(self, stop: asyncio.Event) -> None:
        if not await start_with_retries("dependencies", self._prepare, stop, self.service):
            return
        for loop in (self.events_loop, self.results_loop):
            if not await start_with_retries(
                f"consumer {loop.topic}", loop.start, stop, self.service
            ):
                return
        self.service.started.set()
        self.service.startup_error = None
        log.info(
            "runner started",
            extra={"groups": [self.settings.group_runner, self.settings.group_results]},
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    self.events_loop.run(stop, drain_timeout_s=self.settings.shutdown_drain_s)
                )
                group.create_task(self.results_loop.run(stop, drain_timeout_s=3.0))
                group.create_task(
                    periodic(
                        "reconciler",
                        self.settings.reaper_interval_s,
                        self.reconciler.run_once,
                        stop,
                    )
                )
                group.create_task(
                    periodic("reaper", self.settings.reaper_interval_s, self.reaper.run_once, stop)
                )
                group.create_task(periodic("lag", 5.0, self._report_lag, stop))
        finally:
            await self.publisher.stop()
            await self.store.close()
            self.objects.close()

    async def _report_lag(self) -> None:
        for loop in self.service.loops:
            report_lag(loop, self.telemetry)
        self.telemetry.gauge("videos_in_progress", self.events_loop.stats.in_flight)
        self.telemetry.gauge("results_in_progress", self.results_loop.stats.in_flight)


def report_lag(loop: ConsumerLoop, telemetry: PrometheusTelemetry) -> None:
    """Consumer lag per partition (the high watermark minus the last committed offset), and
    the loop's retries so far."""
    if not loop.is_started:
        return
    # Retries wait a dependency out without limit: this is how an operator sees them climb.
    telemetry.gauge("consumer_retries", loop.stats.retries, topic=loop.topic)
    consumer = loop.consumer
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        committed = loop.committed.get(tp)
        if highwater is None or committed is None:
            continue
        telemetry.gauge(
            "consumer_lag",
            max(highwater - committed, 0),
            topic=tp.topic,
            partition=str(tp.partition),
        )


class Inference:
    """The inference worker process: ``inference_tasks`` -> detector -> ``inference_results``."""

    def __init__(self, settings: Settings, *, max_in_flight: int | None = None) -> None:
        self.settings = settings
        self.telemetry = PrometheusTelemetry()
        self.objects = object_store(settings)
        self.publisher = KafkaPublisher(kafka_connection(settings, "inference"))
        self.detector = BatchingDetector(
            detector(settings), batch_size=settings.inference_batch_size
        )
        self.worker = InferenceWorker(
            InferenceConfig(
                results_topic=settings.topic_inference_results, dlq_suffix=settings.dlq_suffix
            ),
            objects=self.objects,
            publisher=self.publisher,
            detector=self.detector,
            telemetry=self.telemetry,
        )
        self.loop = consumer_loop(
            settings,
            "inference",
            topic=settings.topic_inference_tasks,
            group_id=settings.group_inference,
            handler=self.worker,
            max_in_flight=max_in_flight or settings.inference_batch_size * 2,
        )
        self.service = Service(
            role="inference",
            settings=settings,
            telemetry=self.telemetry,
            checks={"kafka": self.publisher.ping, "s3": self.objects.ping},
            loops=[self.loop],
        )

    async def _prepare(self) -> None:
        await self.objects.ping()
        await ensure_topics_of(self.settings, "inference")
        await self.publisher.start()

    async def run(self, stop: asyncio.Event) -> None:
        if not await start_with_retries("dependencies", self._prepare, stop, self.service):
            return
        if not await start_with_retries("consumer", self.loop.start, stop, self.service):
            return
        self.service.started.set()
        self.service.startup_error = None
        log.info("inference worker started", extra={"detector": self.detector.name})
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.loop.run(stop, drain_timeout_s=5.0))
                group.create_task(periodic("lag", 5.0, self._report_lag, stop))
        finally:
            await self.detector.close()
            await self.publisher.stop()
            self.objects.close()

    async def _report_lag(self) -> None:
        report_lag(self.loop, self.telemetry)


class Outbox:
    """The outbox-S3 worker process: ``predictable`` -> final JSON in S3 -> ``ready``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = PrometheusTelemetry()
        self.objects = object_store(settings)
        self.store = prediction_store(settings)
        self.worker = OutboxS3(
            OutboxConfig(
                default_bucket=settings.bucket_videos,
                notice_grace_s=settings.outbox_notice_grace_s,
                keep_frame_documents=settings.keep_frame_documents,
                failed_retention_s=settings.failed_retention_s,
                work_dir=work_dir(settings),
            ),
            store=self.store,
            objects=self.objects,
            telemetry=self.telemetry,
        )
        self.loop = consumer_loop(
            settings,
            "outbox",
            topic=settings.topic_predictable_events,
            group_id=settings.group_outbox,
            handler=self.worker,
            max_in_flight=4,
        )
        self.service = Service(
            role="outbox-s3",
            settings=settings,
            telemetry=self.telemetry,
            checks={"s3": self.objects.ping, "mongodb": self.store.ping},
            store=self.store,
            loops=[self.loop],
        )

    async def _prepare(self) -> None:
        await self.store.ping()
        await self.objects.ping()
        await ensure_topics_of(self.settings, "outbox")
        work_dir(self.settings).mkdir(parents=True, exist_ok=True)

    async def run(self, stop: asyncio.Event) -> None:
        if not await start_with_retries("dependencies", self._prepare, stop, self.service):
            return
        if not await start_with_retries("consumer", self.loop.start, stop, self.service):
            return
        self.service.started.set()
        self.service.startup_error = None
        log.info("outbox-s3 worker started")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.loop.run(stop, drain_timeout_s=10.0))
                group.create_task(
                    periodic(
                        "outbox-sweep",
                        self.settings.outbox_sweep_interval_s,
                        self.worker.sweep,
                        stop,
                    )
                )
        finally:
            await self.store.close()
            self.objects.close()
