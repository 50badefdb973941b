"""The worker runtime every long-running process runs on (runner, inference, outbox-S3).

``Worker`` runs a process's start-up steps, consumers and periodic jobs; ``Service`` is what the
HTTP surface reads from it (readiness, metrics, the prediction store). Bootstrap builds them;
the runtime knows no service.
"""

from video_runner.runtime.readiness import Check, Service, timed_check
from video_runner.runtime.worker import Consumer, PeriodicJob, Step, Worker

__all__ = ["Check", "Consumer", "PeriodicJob", "Service", "Step", "Worker", "timed_check"]
