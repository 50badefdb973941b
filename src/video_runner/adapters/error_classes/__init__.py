"""One table of error classes: what each S3, Kafka and MongoDB failure means for the work at hand.

The adapters call these pure functions on whatever their library raised and raise the result.
Three outcomes (see ``video_runner.errors`` for the tree, docs/operations.md for what an operator
sees):

* ``DependencyUnavailable``: the server did not answer, throttled us, or answered 5xx. Retried
  with backoff, without limit and without commit: waiting loses nothing.
* ``AccessProblem`` (a ``ConfigurationError``): the server answers but refuses *us*: credentials,
  permissions, TLS trust, a bucket or topic of ours missing or misnamed. Never the event's fault,
  so never a failure: fatal at start-up, waited out with an alert mid-run.
* a ``PermanentError`` with a precise code: the refusal is about *this* event's name or object,
  and the same request will be refused forever. Dead-lettered and recorded at once.

Anything else is returned unchanged, so that a genuinely unknown failure stays "unexpected" in
the consumer loop (a few tries, then ``internal``) instead of being retried forever.

One module per dependency (``s3``, ``kafka``, ``mongo``), ``local`` for faults of this
machine, and ``escaped`` for an exception that reached a retry loop unclassified (it picks the
table by the exception's library). What a loop does with the result is the retry policy's
(``video_runner.domain.retry_policy``).
"""

from video_runner.adapters.error_classes.escaped import classify_escaped
from video_runner.adapters.error_classes.kafka import classify_kafka
from video_runner.adapters.error_classes.local import classify_local, is_local_fault
from video_runner.adapters.error_classes.mongo import classify_mongo, is_duplicate_key
from video_runner.adapters.error_classes.s3 import (
    S3_DENIED_CODES,
    classify_s3,
    is_s3_plain_denial,
    s3_error_code,
)

__all__ = [
    "S3_DENIED_CODES",
    "classify_escaped",
    "classify_kafka",
    "classify_local",
    "classify_mongo",
    "classify_s3",
    "is_duplicate_key",
    "is_local_fault",
    "is_s3_plain_denial",
    "s3_error_code",
]
