"""Prometheus telemetry: the one list of declared metrics, what a scrape shows, and the docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from video_runner.adapters.metrics import METRICS, Kind, PrometheusTelemetry, UndeclaredMetric

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src" / "video_runner"
METHOD_KINDS = {"count": Kind.COUNTER, "observe": Kind.HISTOGRAM, "gauge": Kind.GAUGE}
VALUE_ARGUMENTS = {"value", "seconds"}


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


def test_counters_carry_their_declared_help_text():
    """The HELP line comes from the one list of declared metrics."""
    telemetry = PrometheusTelemetry()
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
    telemetry.gauge("consumer_lag", 10, topic="t", partition="0")
    telemetry.gauge("consumer_lag", 4, topic="t", partition="0")
    telemetry.gauge("consumer_lag", 7, topic="t", partition="1")
    telemetry.gauge("videos_in_progress", 2)
    samples = _samples(telemetry)
    assert samples["video_runner_consumer_lag", (("partition", "0"), ("topic", "t"))] == 4.0
    assert samples["video_runner_consumer_lag", (("partition", "1"), ("topic", "t"))] == 7.0
    assert samples["video_runner_videos_in_progress", ()] == 2.0
    assert "# TYPE video_runner_consumer_lag gauge" in telemetry.render().decode()


def test_every_declared_family_is_exposed_on_a_fresh_start_and_unlabelled_ones_read_zero():
    """Before any work, a scrape shows every declared family; those without labels show 0."""
    text = PrometheusTelemetry().render().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for spec in METRICS:
        assert f"# TYPE {spec.exposed_name} {spec.kind}" in text
        family = families[f"video_runner_{spec.name}"]
        if not spec.labels and spec.kind is not Kind.HISTOGRAM:
            assert [s.value for s in family.samples if s.name == spec.exposed_name] == [0.0]


def test_an_undeclared_metric_name_raises_in_tests():
    """A typo in a metric name is an error under the suite's warnings-as-errors setting."""
    telemetry = PrometheusTelemetry()
    with pytest.raises(UndeclaredMetric, match="events_recieved"):
        telemetry.count("events_recieved")


def test_a_declared_name_with_the_wrong_kind_or_labels_raises_in_tests():
    """The kind and the label names are part of the declaration, not only the name."""
    telemetry = PrometheusTelemetry()
    with pytest.raises(UndeclaredMetric, match="events_ready"):
        telemetry.gauge("events_ready", 1)
    with pytest.raises(UndeclaredMetric, match="events_failed"):
        telemetry.count("events_failed")
    with pytest.raises(UndeclaredMetric, match="consumer_lag"):
        telemetry.gauge("consumer_lag", 3, partition="0")


def test_an_undeclared_metric_is_dropped_in_production_and_no_family_is_created():
    """Outside the tests it only warns: the work being counted goes on, nothing new is exposed."""
    telemetry = PrometheusTelemetry()
    before = telemetry.render()
    with pytest.warns(UndeclaredMetric):
        telemetry.count("widgets_spun")
    assert telemetry.render() == before
    assert b"widgets" not in before


def test_each_telemetry_has_its_own_registry():
    """Two instances (two services in one test process) never collide nor share counts."""
    one, two = PrometheusTelemetry(), PrometheusTelemetry()
    one.count("events_received")
    two.count("events_received")
    two.count("events_received")
    assert _samples(one)["video_runner_events_received_total", ()] == 1.0
    assert _samples(two)["video_runner_events_received_total", ()] == 2.0


def _emitted() -> dict[tuple[str, Kind], set[frozenset[str]]]:
    """Every metric the source emits: ``<...telemetry>.count("name", ..., label=...)`` calls."""
    found: dict[tuple[str, Kind], set[frozenset[str]]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in METHOD_KINDS
                and "telemetry" in ast.unparse(node.func.value)
            ):
                continue
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant), f"{path.name}: a metric name must be a literal"
            labels = frozenset(k.arg for k in node.keywords if k.arg not in VALUE_ARGUMENTS)
            key = (first.value, METHOD_KINDS[node.func.attr])
            found.setdefault(key, set()).add(labels)
    return found


def test_every_metric_the_code_emits_is_declared_with_its_kind_and_labels_and_no_other():
    """The source and the one list agree: nothing emitted undeclared, nothing declared unused."""
    emitted = _emitted()
    declared = {(spec.name, spec.kind): frozenset(spec.labels) for spec in METRICS}
    assert set(emitted) == set(declared)
    for key, label_sets in emitted.items():
        assert label_sets == {declared[key]}, key


def _documented() -> dict[str, str]:
    """The metrics table of docs/operations.md: exposed name -> its "Type, labels" cell."""
    text = (REPO / "docs" / "operations.md").read_text("utf-8")
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(video_runner_\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: cell.strip() for name, cell in rows}


def test_the_operations_metrics_table_documents_exactly_the_declared_metrics():
    """Every declared metric has a row with its kind and labels; no row names anything else."""
    documented = _documented()
    assert set(documented) == {spec.exposed_name for spec in METRICS}
    for spec in METRICS:
        cell = documented[spec.exposed_name]
        assert cell.split(",")[0] == spec.kind, spec.name
        labels = re.findall(r"`(\w+)`", cell.split("(")[0])
        assert labels == list(spec.labels), spec.name
