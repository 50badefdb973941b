"""video-runner: videos in, per-frame object detections out, over Kafka, S3 and MongoDB."""

__version__ = "0.1.0"
