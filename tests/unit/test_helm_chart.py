"""The Helm chart (deploy/helm/video-runner): it lints, renders, and what it renders is right.

The manifests `helm template` renders are read back: every environment name is a real setting,
every probe asks a real endpoint on the port its service listens on, images carry a release
tag, pods run as non-root on a read-only root, and KEDA never scales past the partitions.
helm is the binary tools/containers/helm.sh builds once and caches (`make helm`).
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.entrypoints.http import build_app
from video_runner.runtime import Service
from video_runner.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "video-runner"
SETTINGS = {name.upper() for name in Settings.model_fields}
#: The service each Deployment's first argument starts, and the setting of its HTTP port.
PORT_SETTING = {
    "serve": "http_port",
    "inference": "inference_http_port",
    "outbox-s3": "outbox_http_port",
}


@cache
def helm() -> str:
    found = subprocess.run(
        ["bash", str(ROOT / "tools" / "containers" / "helm.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.strip()


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=False, timeout=60)


@cache
def rendered(*options: str) -> tuple[dict[str, Any], ...]:
    done = run_helm("template", "vr", str(CHART), *options)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(kind: str, *options: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(*options) if doc["kind"] == kind]


def containers(*options: str) -> list[dict[str, Any]]:
    return [
        container
        for deployment in of_kind("Deployment", *options)
        for container in deployment["spec"]["template"]["spec"]["containers"]
    ]


@cache
def http_paths() -> frozenset[str]:
    service = Service(
        role="runner", settings=load_settings(), telemetry=PrometheusTelemetry(), checks={}
    )
    app = build_app(service)
    return frozenset(
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    )


def test_the_chart_passes_helm_lint_in_strict_mode() -> None:
    """`helm lint --strict` finds nothing to warn about, with the values schema applied."""
    done = run_helm("lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_the_chart_renders_the_three_services_with_a_budget_and_a_scaler_each() -> None:
    """A Deployment, a PodDisruptionBudget and a KEDA ScaledObject for each of the three."""
    components = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in of_kind("Deployment")
    }
    assert components == {"runner", "inference", "outbox-s3"}
    for kind in ("PodDisruptionBudget", "ScaledObject"):
        assert {
            doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in of_kind(kind)
        } == components


def test_every_environment_name_the_chart_sets_is_a_real_setting() -> None:
    """ConfigMap keys, Secret keys and container env names are all fields of settings.py."""
    options = (
        "--set",
        "secret.values.S3_SECRET_ACCESS_KEY=s",
        "--set",
        "secret.values.MONGO_URI=m",
    )
    names = set()
    for doc in of_kind("ConfigMap", *options):
        names |= set(doc["data"])
    for doc in of_kind("Secret", *options):
        names |= set(doc.get("stringData") or {})
    for container in containers(*options):
        names |= {entry["name"] for entry in container.get("env", [])}
    assert "S3_SECRET_ACCESS_KEY" in names
    assert "KAFKA_BOOTSTRAP_SERVERS" in names
    assert names - SETTINGS == set()


def test_every_deployment_reads_the_config_map_and_the_secret_the_chart_makes() -> None:
    """envFrom names exactly the rendered ConfigMap and Secret."""
    config_maps = {doc["metadata"]["name"] for doc in of_kind("ConfigMap")}
    secrets = {doc["metadata"]["name"] for doc in of_kind("Secret")}
    for container in containers():
        sources = container["envFrom"]
        assert {
            source["configMapRef"]["name"] for source in sources if "configMapRef" in source
        } <= config_maps
        assert {
            source["secretRef"]["name"] for source in sources if "secretRef" in source
        } <= secrets
        assert len(sources) == 2


def test_probes_ask_real_endpoints_on_the_port_the_service_listens_on() -> None:
    """Liveness asks /health/live, readiness /health/ready, both real routes, on the port given
    to the service by --port, which is also its default port setting and its containerPort."""
    defaults = load_settings()
    for container in containers():
        command, flag, port = container["args"]
        assert flag == "--port"
        assert int(port) == getattr(defaults, PORT_SETTING[command])
        ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
        assert ports == {"http": int(port)}
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] in http_paths()
            assert get["port"] == "http"


def test_no_image_is_untagged_or_latest() -> None:
    """Every container image names a release tag (or a digest), never `latest`."""
    for container in containers():
        image = container["image"]
        _, _, tag = image.rpartition(":")
        assert tag
        assert "/" not in tag
        assert tag != "latest"


def test_the_values_schema_refuses_a_latest_tag() -> None:
    """`--set image.tag=latest` fails to render, by the values schema."""
    done = run_helm("template", "vr", str(CHART), "--set", "image.tag=latest")
    assert done.returncode != 0
    assert "/image/tag" in done.stderr


def test_the_values_schema_refuses_a_secret_in_the_config_map() -> None:
    """A secret setting given under `config` (a ConfigMap) fails to render."""
    done = run_helm("template", "vr", str(CHART), "--set", "config.MONGO_URI=mongodb://u:p@m/")
    assert done.returncode != 0
    assert "/config" in done.stderr


def test_pods_run_as_non_root_on_a_read_only_root_with_no_capabilities() -> None:
    """Pod and container securityContext: non-root, read-only root, no escalation, no caps,
    and the work directory on a volume so the read-only root is usable."""
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["terminationGracePeriodSeconds"] >= 30
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {mount["mountPath"] for mount in container["volumeMounts"]} == {
                "/var/lib/video-runner"
            }
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]


def test_scalers_read_each_consumer_groups_lag_and_stop_at_the_partition_count() -> None:
    """One kafka trigger per group the service consumes in (names as in settings.py), at most
    `kafka.partitions` replicas, and only inference may scale to zero."""
    defaults = load_settings()
    expected = {
        "runner": {
            (defaults.topic_outbox_events, defaults.group_runner),
            (defaults.topic_inference_results, defaults.group_results),
        },
        "inference": {(defaults.topic_inference_tasks, defaults.group_inference)},
        "outbox-s3": {(defaults.topic_predictable_events, defaults.group_outbox)},
    }
    options = ("--set", "kafka.partitions=3", "--set", "runner.autoscaling.maxReplicas=8")
    for scaler in of_kind("ScaledObject", *options):
        component = scaler["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = scaler["spec"]
        triggers = {
            (trigger["metadata"]["topic"], trigger["metadata"]["consumerGroup"])
            for trigger in spec["triggers"]
        }
        assert triggers == expected[component]
        assert spec["maxReplicaCount"] <= 3
        assert spec["minReplicaCount"] == (0 if component == "inference" else 1)
        assert all(t["metadata"]["allowIdleConsumers"] == "false" for t in spec["triggers"])


@pytest.mark.parametrize("service", ["runner", "outbox"])
def test_the_schema_refuses_scaling_the_runner_or_outbox_to_zero(service: str) -> None:
    """Their periodic jobs (reaper, reconciler, sweep) need one replica: minReplicas 0 fails."""
    done = run_helm("template", "vr", str(CHART), "--set", f"{service}.autoscaling.minReplicas=0")
    assert done.returncode != 0
    assert f"/{service}/autoscaling/minReplicas" in done.stderr


def test_without_keda_the_deployments_have_fixed_replicas_and_no_scalers() -> None:
    """keda.enabled=false: no ScaledObject, and each Deployment has its `replicas` value."""
    replicas = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"]["replicas"]
        for doc in of_kind("Deployment", "--set", "keda.enabled=false")
    }
    assert replicas == {"runner": 2, "inference": 2, "outbox-s3": 1}
    assert of_kind("ScaledObject", "--set", "keda.enabled=false") == []
