"""Kafka connection options for production: SASL and TLS reach the aiokafka clients."""

from __future__ import annotations

import ssl
from types import SimpleNamespace

import pytest

from video_runner.adapters.kafka import KafkaConnection
from video_runner.bootstrap import consumer_loop, kafka_connection, secrets_of
from video_runner.domain.backoff import backoff_delay
from video_runner.settings import load_settings


def test_plaintext_is_the_default_and_carries_no_credentials():
    """Locally nothing but the bootstrap servers and a client id is set."""
    options = KafkaConnection(bootstrap_servers="127.0.0.1:9092").options()
    assert options["security_protocol"] == "PLAINTEXT"
    assert "sasl_mechanism" not in options
    assert "ssl_context" not in options


def test_sasl_ssl_settings_give_a_tls_context_and_the_sasl_credentials():
    """SASL_SSL with SCRAM: the client gets an SSL context, the mechanism, user and password."""
    settings = load_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="runner",
        kafka_sasl_password="s3cret-pass",
    )
    options = kafka_connection(settings, "runner").options()
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "runner"
    assert options["sasl_plain_password"] == "s3cret-pass"
    assert options["client_id"] == "video-runner-runner"


def test_every_secret_of_the_settings_is_known_to_the_log_filter():
    """The S3 secret, the SASL password and the password inside the MongoDB URI are redacted."""
    settings = load_settings(
        s3_secret_access_key="s3-secret-value",
        kafka_sasl_password="sasl-password",
        mongo_uri="mongodb://runner:mongo-password@db.example:27017/",
    )
    secrets = secrets_of(settings)
    assert {"s3-secret-value", "sasl-password", "mongo-password"} <= set(secrets)


def test_backoff_grows_exponentially_with_jitter_and_stays_under_its_cap():
    """Retry delays double per attempt, are jittered, and never exceed the maximum."""
    for attempt in range(10):
        delay = backoff_delay(attempt, 0.5, 30.0)
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_static_membership_is_off_unless_an_instance_id_is_set():
    """Without KAFKA_GROUP_INSTANCE_ID consumers join dynamically; with it, each consumer joins
    its group as ``{id}-{group}``, so one process in several groups never reuses an id."""
    plain = load_settings()
    assert consumer_loop(plain, "runner", **_LOOP).options.get("group_instance_id") is None
    static = load_settings(kafka_group_instance_id="runner-0")
    options = consumer_loop(static, "runner", **_LOOP).options
    assert options["group_instance_id"] == "runner-0-runner-results-group"


_LOOP = {
    "topic": "inference_results",
    "group_id": "runner-results-group",
    # Options only: nothing is consumed, so the handler is never called.
    "handler": SimpleNamespace(),
    "max_in_flight": 1,
}


def test_topics_created_on_a_replicated_cluster_carry_min_insync_replicas(monkeypatch):
    """KAFKA_TOPIC_REPLICATION=3 and KAFKA_TOPIC_MIN_INSYNC_REPLICAS=2 (what the three-broker
    stack's env says) reach every creation request; unset, the broker's default stays."""
    from video_runner.adapters.kafka.admin import new_topics

    monkeypatch.setenv("KAFKA_TOPIC_REPLICATION", "3")
    monkeypatch.setenv("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "2")
    settings = load_settings()
    [topic] = new_topics(
        ["t"],
        partitions=4,
        replication=settings.kafka_topic_replication,
        configs=settings.topic_configs,
    )
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("t", 4, 3)
    assert topic.topic_configs == {"min.insync.replicas": "2"}
    monkeypatch.setenv("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "")
    [plain] = new_topics(["t"], partitions=4, replication=1, configs=load_settings().topic_configs)
    assert not plain.topic_configs


def test_more_in_sync_replicas_than_replicas_is_refused():
    """min.insync.replicas above the replication factor would refuse every acks=all write."""
    settings = load_settings(kafka_topic_replication=1, kafka_topic_min_insync_replicas=2)
    with pytest.raises(ValueError, match="KAFKA_TOPIC_MIN_INSYNC_REPLICAS 2"):
        _ = settings.topic_configs
