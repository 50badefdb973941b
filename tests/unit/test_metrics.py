"""Prometheus telemetry: the services' counts, timings and gauges as scrapeable text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from video_runner.adapters.metrics import PrometheusTelemetry


def _samples(telemetry: PrometheusTelemetry) -> dict[tuple[str, tuple], float]:
    text = telemetry.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_render_with_the_prefix_the_total_suffix_and_their_labels():
    """count() adds up per label set, as video_runner_<name>_total{labels}."""
    telemetry = PrometheusTelemetry()
    telemetry.count("events_failed", error_code="missing_object")
    telemetry.count("events_failed", error_code="missing_object")
    telemetry.count("events_failed", error_code="corrupt")
    telemetry.count("frames_published", 32)
    samples = _samples(telemetry)
    failed = "video_runner_events_failed_total"
    assert samples[failed, (("error_code", "missing_object"),)] == 2.0
    assert samples[failed, (("error_code", "corrupt"),)] == 1.0
    assert samples["video_runner_frames_published_total", ()] == 32.0


def test_counters_carry_their_documented_help_text():
    """The HELP line comes from the table of known metrics."""
    telemetry = PrometheusTelemetry()
    telemetry.count("events_ready")
    text = telemetry.render().decode()
    assert (
        "# HELP video_runner_events_ready_total events whose final JSON was written to S3" in text
    )
    assert "# TYPE video_runner_events_ready_total counter" in text


def test_histograms_render_buckets_sum_and_count_per_label():
    """observe() fills a histogram in seconds, one series per stage."""
    telemetry = PrometheusTelemetry()
    telemetry.observe("stage_seconds", 0.2, stage="download")
    telemetry.observe("stage_seconds", 3.0, stage="download")
    telemetry.observe("stage_seconds", 0.004, stage="upload")
    samples = _samples(telemetry)
    download = ("stage", "download")
    assert samples["video_runner_stage_seconds_count", (download,)] == 2.0
    assert samples["video_runner_stage_seconds_sum", (download,)] == 3.2
    assert samples["video_runner_stage_seconds_bucket", (("le", "0.25"), download)] == 1.0
    assert samples["video_runner_stage_seconds_bucket", (("le", "5.0"), download)] == 2.0
    assert samples["video_runner_stage_seconds_bucket", (("le", "+Inf"), download)] == 2.0
    assert samples["video_runner_stage_seconds_bucket", (("le", "0.005"), ("stage", "upload"))] == 1


def test_gauges_keep_the_last_value_per_label_set():
    """gauge() sets, it does not add."""
    telemetry = PrometheusTelemetry()
    telemetry.gauge("consumer_lag", 10, partition="0")
    telemetry.gauge("consumer_lag", 4, partition="0")
    telemetry.gauge("consumer_lag", 7, partition="1")
    telemetry.gauge("videos_in_progress", 2)
    samples = _samples(telemetry)
    assert samples["video_runner_consumer_lag", (("partition", "0"),)] == 4.0
    assert samples["video_runner_consumer_lag", (("partition", "1"),)] == 7.0
    assert samples["video_runner_videos_in_progress", ()] == 2.0
    assert "# TYPE video_runner_consumer_lag gauge" in telemetry.render().decode()


def test_an_unknown_metric_name_gets_a_help_text_from_its_name():
    """A metric missing from the table still renders, its name spelt out as help."""
    telemetry = PrometheusTelemetry()
    telemetry.count("widgets_spun")
    assert "# HELP video_runner_widgets_spun_total widgets spun" in telemetry.render().decode()


def test_each_telemetry_has_its_own_registry():
    """Two instances (two services in one test process) never collide nor share counts."""
    one, two = PrometheusTelemetry(), PrometheusTelemetry()
    one.count("events_received")
    two.count("events_received")
    two.count("events_received")
    assert _samples(one)["video_runner_events_received_total", ()] == 1.0
    assert _samples(two)["video_runner_events_received_total", ()] == 2.0
