"""Kafka failures: aiokafka's exceptions by family (access, configuration, too large, transient)."""

from __future__ import annotations

from aiokafka import errors as kafka_errors

from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    OutputRejected,
)

_KAFKA_ACCESS = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
    kafka_errors.SecurityDisabled,
    kafka_errors.DelegationTokenExpired,
    kafka_errors.DelegationTokenAuthorizationFailed,
)
_KAFKA_CONFIGURATION = (
    kafka_errors.InvalidTopicError,
    kafka_errors.InvalidRequiredAcksError,
    kafka_errors.InvalidSessionTimeoutError,
    kafka_errors.InvalidConfigurationError,
    kafka_errors.InvalidGroupIdError,
    kafka_errors.KafkaConfigurationError,
    kafka_errors.IncompatibleBrokerVersion,
    kafka_errors.UnrecognizedBrokerVersion,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.UnsupportedCodecError,
    kafka_errors.PolicyViolationError,
)
_KAFKA_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
#: Not flagged retriable by aiokafka, but they pass: timeouts, leaders moving, group churn.
_KAFKA_TRANSIENT = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.ReplicaNotAvailableError,
    kafka_errors.QuotaViolationError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
    kafka_errors.ProducerClosed,
    kafka_errors.Cancelled,
)


def classify_kafka(exc: Exception, *, what: str = "kafka") -> Exception:
    """Map an exception of aiokafka onto the project's tree.

    ``MessageSizeTooLargeError`` (the broker's limit) and ``RecordTooLargeError`` (the producer's
    ``max_request_size``) are permanent for the message being written: ``OutputRejected`` with
    ``message_too_large``. Authorization and SASL failures are ``AccessProblem``; an invalid
    topic name or an unsupported option is a ``ConfigurationError``; everything aiokafka flags
    ``retriable``, timeouts and group churn are ``DependencyUnavailable``.
    """
    if isinstance(exc, _KAFKA_TOO_LARGE):
        return OutputRejected(
            f"{what}: the message is over the broker's size limit: {exc}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
    if isinstance(exc, _KAFKA_ACCESS):
        return AccessProblem("kafka", f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, _KAFKA_CONFIGURATION):
        return ConfigurationError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, _KAFKA_TRANSIENT) or (
        isinstance(exc, kafka_errors.KafkaError) and exc.retriable
    ):
        return DependencyUnavailable("kafka", f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, TimeoutError | ConnectionError):
        return DependencyUnavailable("kafka", f"{what}: {type(exc).__name__}: {exc}")
    return exc
