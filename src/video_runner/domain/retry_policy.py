"""One retry policy: what a loop does after a failure, and how long it waits before trying again.

The adapters' error tables (``adapters/error_classes``) turn what a library raised into the
project's exception tree (``video_runner.errors``); this module turns the tree into a
:class:`Decision` for the kind of work that failed (:class:`Work`):

===============  ===========  ===========  ========  ============  ===========
error            message      dead-letter  start-up  periodic job  webhook
===============  ===========  ===========  ========  ============  ===========
dependency down  wait out     wait out     wait out  wait out      retry
configuration    wait out     wait out     give up   wait out      retry
permanent        dead-letter  wait out     give up   retry         dead-letter
unexpected       retry        wait out     give up   retry         retry
===============  ===========  ===========  ========  ============  ===========

* **wait out**: try again after a backoff, without limit, and never fail the work for it; the
  log and readiness name the dependency (:func:`dependency_of`).
* **retry**: try again after a backoff, ``max_attempts`` tries in all, then **give up**. A
  periodic job's retry is its next run, so it never gives up.
* **dead-letter**: the same try will always fail: record it and stop (a consumer dead-letters
  the message and commits it, a webhook is recorded ``failed``).
* **give up**: what the work does then is its own: a message is dead-lettered as ``internal``, a
  batch is handled one record at a time, start-up raises (a configuration error exits 2).

Why the columns differ: a message must never be lost, so only the message itself can fail it;
a dead-letter that cannot be written keeps its message in work rather than drop the record of a
failure; a process that is starting has no work to protect, so anything but a dependency that
is not up yet is raised at once, a clear error instead of a hang; a webhook's receiver is not
one of our dependencies, so waiting for it is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from video_runner.domain.backoff import backoff_delay
from video_runner.errors import (
    ConfigurationError,
    DependencyUnavailable,
    OutputRejected,
    PermanentError,
    RetriableError,
    VideoRunnerError,
)


class Decision(StrEnum):
    """What a loop does after a failure."""

    RETRY = "retry"
    WAIT_OUT = "wait_out"
    DEAD_LETTER = "dead_letter"
    GIVE_UP = "give_up"


class Work(StrEnum):
    """The kinds of work that retry, each a column of the policy's table."""

    #: A consumer handling one record or one batch.
    MESSAGE = "message"
    #: A consumer recording a permanent failure (the handler's ``dead_letter``).
    DEAD_LETTER = "dead_letter"
    #: A process's start-up step (dependencies, topics, a consumer joining its group).
    START_UP = "start_up"
    #: A job run every interval (reaper, reconciler, outbox sweep).
    PERIODIC_JOB = "periodic_job"
    #: One POST of a completion notice to its ``callback_url``.
    WEBHOOK = "webhook"


class ErrorKind(StrEnum):
    """What an error of the tree says about the work, a row of the policy's table."""

    #: ``RetriableError``, ``DependencyUnavailable`` included: the same work may succeed later.
    DEPENDENCY_DOWN = "dependency_down"
    #: ``ConfigurationError``, ``AccessProblem`` included: an operator must act.
    CONFIGURATION = "configuration"
    #: ``PermanentError`` and its subclasses: the same input will always fail.
    PERMANENT = "permanent"
    #: Anything else: a bug, or an input nobody foresaw.
    UNEXPECTED = "unexpected"


# Short names, so that the table reads as the one in the module docstring.
_WAIT, _RETRY = Decision.WAIT_OUT, Decision.RETRY
_DEAD, _GIVE_UP = Decision.DEAD_LETTER, Decision.GIVE_UP
_DOWN, _CONFIG = ErrorKind.DEPENDENCY_DOWN, ErrorKind.CONFIGURATION
_PERMANENT, _UNEXPECTED = ErrorKind.PERMANENT, ErrorKind.UNEXPECTED

#: The table of the module docstring, a column per work.
RULES: Mapping[Work, Mapping[ErrorKind, Decision]] = {
    Work.MESSAGE: {_DOWN: _WAIT, _CONFIG: _WAIT, _PERMANENT: _DEAD, _UNEXPECTED: _RETRY},
    Work.DEAD_LETTER: {_DOWN: _WAIT, _CONFIG: _WAIT, _PERMANENT: _WAIT, _UNEXPECTED: _WAIT},
    Work.START_UP: {_DOWN: _WAIT, _CONFIG: _GIVE_UP, _PERMANENT: _GIVE_UP, _UNEXPECTED: _GIVE_UP},
    Work.PERIODIC_JOB: {_DOWN: _WAIT, _CONFIG: _WAIT, _PERMANENT: _RETRY, _UNEXPECTED: _RETRY},
    Work.WEBHOOK: {_DOWN: _RETRY, _CONFIG: _RETRY, _PERMANENT: _DEAD, _UNEXPECTED: _RETRY},
}
#: A periodic job runs again at its next interval whatever happens: it has no attempts to use up.
_UNBOUNDED = frozenset({Work.PERIODIC_JOB})

#: 408 Request Timeout and 429 Too Many Requests ask to be tried later, like a 5xx.
HTTP_TRY_LATER = frozenset({408, 429})
_HTTP_OK = range(200, 300)
_HTTP_SERVER_ERROR = 500


def kind_of(error: BaseException) -> ErrorKind:
    """The row of the table ``error`` falls in (classify a library's exception first)."""
    if isinstance(error, RetriableError):
        return ErrorKind.DEPENDENCY_DOWN
    if isinstance(error, ConfigurationError):
        return ErrorKind.CONFIGURATION
    if isinstance(error, PermanentError):
        return ErrorKind.PERMANENT
    return ErrorKind.UNEXPECTED


def dependency_of(error: BaseException) -> str | None:
    """What a wait is for, as the log and readiness name it: the error's dependency, or
    ``settings`` for a configuration error that names none; ``None`` for any other error."""
    dependency = getattr(error, "dependency", None)
    if isinstance(dependency, str):
        return dependency
    return "settings" if isinstance(error, ConfigurationError) else None


def http_failure(status: int | None) -> VideoRunnerError | None:
    """What the outcome of an HTTP request means, in the tree: ``None`` for a 2xx.

    No answer (``status`` is ``None``: a refused connection, a timeout), a 5xx, a 408 or a 429
    is the receiver unavailable; any other status (a 4xx, a 3xx since redirects are not
    followed) refuses the request for good.
    """
    if status is None:
        return DependencyUnavailable("webhook", "no answer")
    if status in _HTTP_OK:
        return None
    if status >= _HTTP_SERVER_ERROR or status in HTTP_TRY_LATER:
        return DependencyUnavailable("webhook", f"HTTP {status}")
    return OutputRejected(f"HTTP {status}: the receiver refuses the notice")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The table above, and the backoff between tries (``bootstrap/configs.py`` makes it from the
    settings: ``RETRY_*`` for the consumers, start-up and periodic jobs, ``WEBHOOK_*`` for the
    webhooks)."""

    #: The first backoff, in seconds (jittered down to half of it).
    initial_s: float
    #: No backoff is longer, however many failures came before.
    max_s: float
    #: Tries in all of a work whose decision is ``retry``, before it gives up.
    max_attempts: int

    def decide(self, error: BaseException, *, work: Work, failures: int) -> Decision:
        """What ``work`` does after ``error``, its ``failures``-th failure that counts toward
        its attempts (this one included; a wait-out never counts, see :class:`Tries`)."""
        decision = RULES[work][kind_of(error)]
        bounded = work not in _UNBOUNDED
        if decision is Decision.RETRY and bounded and failures >= self.max_attempts:
            return Decision.GIVE_UP
        return decision

    def decide_http(self, status: int | None, *, attempts: int) -> Decision | None:
        """What a webhook does after its ``attempts``-th POST answered ``status`` (``None``: no
        answer); ``None`` when it was delivered."""
        failure = http_failure(status)
        if failure is None:
            return None
        return self.decide(failure, work=Work.WEBHOOK, failures=attempts)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 or more): about ``initial_s``
        after the first, up to twice as long after each next one, never over ``max_s``; full
        jitter, so replicas that failed together do not retry together."""
        return backoff_delay(failures - 1, self.initial_s, self.max_s)

    def tries(self, work: Work) -> Tries:
        """A counter of one piece of work's failures, to decide on each and back off."""
        return Tries(self, work)


@dataclass(slots=True)
class Tries:
    """One piece of work's failures, counted the way the policy counts them.

    A wait-out grows its own backoff but never uses up the attempts: a dependency down for an
    hour must not turn the next unexpected error into a give-up. A retry counts toward them.
    """

    policy: RetryPolicy
    work: Work
    waits: int = 0
    retries: int = 0
    #: The decision on the last failure (``None`` before the first).
    last: Decision | None = None

    def failed(self, error: BaseException) -> Decision:
        """Count ``error`` and say what to do about it."""
        decision = self.policy.decide(error, work=self.work, failures=self.retries + 1)
        if decision is Decision.WAIT_OUT:
            self.waits += 1
        else:
            self.retries += 1
        self.last = decision
        return decision

    def delay(self) -> float:
        """The backoff before the next try, after the failure :meth:`failed` last decided on."""
        waited = self.last is Decision.WAIT_OUT
        return self.policy.delay(self.waits if waited else self.retries)
