"""The Helm chart: strict lint, Kubernetes schemas, policy, and deploy/k8s kept in sync (SPEC §9).

Helm is the `helm-python-sdk` package (libhelm bundled); schemas are `kubernetes-validate`'s,
pinned to render_manifests.KUBE_VERSION.
"""

import base64
import re

import helm_python
import kubernetes_validate
import pytest

from tests.deploy.conftest import (
    CHART,
    VALUES_FILES,
    find,
    objects_of,
    pod_labels,
    pod_spec,
    render_manifests,
)

KUBE_VERSION = render_manifests.KUBE_VERSION
# Kinds that are not part of Kubernetes itself: kubernetes-validate has no schema for them.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SECRET_KEYS = {"DJANGO_SECRET_KEY", "DATABASE_URL", "SPINE_BROKER_URL"}


def render(**overrides):
    values = render_manifests.deep_merge(
        render_manifests.load_values(*VALUES_FILES["default"]), overrides
    )
    return objects_of(render_manifests.render_chart(values))


@pytest.mark.parametrize("values_file", sorted(VALUES_FILES))
def test_chart_lints_strict(values_file):
    values = render_manifests.load_values(*VALUES_FILES[values_file])
    report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert report["errors"] == []
    assert problems == []
    assert report["total_charts_linted"] == 1


def test_renders_every_object_spec9_lists(rendered):
    name, _, objects = rendered
    kinds = {o["kind"] for o in objects}
    expected = {
        "ConfigMap",
        "CronJob",
        "Deployment",
        "Job",
        "Pod",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }
    if name == "production":
        expected |= {"Ingress", "HorizontalPodAutoscaler", "ServiceMonitor"}
    else:
        expected |= {"Secret"}
    assert expected <= kinds
    deployments = {o["metadata"]["name"] for o in find(objects, "Deployment")}
    assert deployments == {
        "market-spine-api",
        "market-spine-scheduler",
        "market-spine-worker-normal",
        "market-spine-worker-backfill",
    }
    assert {o["metadata"]["name"] for o in find(objects, "CronJob")} == {
        "market-spine-reconcile",
        "market-spine-cleanup",
    }


def test_every_object_validates_against_the_kubernetes_schema(rendered):
    _, _, objects = rendered
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue  # checked against the Services it must select, below
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    assert checked == len(objects) - len(find(objects, "ServiceMonitor"))


def test_a_schema_violation_is_caught():
    deployment = find(render(), "Deployment", "market-spine-api")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = (
        8000
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_servicemonitor_scrapes_the_api_and_every_worker(rendered):
    name, _, objects = rendered
    monitors = find(objects, "ServiceMonitor")
    if name != "production":
        assert monitors == []
        return
    (monitor,) = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]
    (expression,) = selector["matchExpressions"]
    selected = [
        s
        for s in find(objects, "Service")
        if selector["matchLabels"].items() <= s["metadata"]["labels"].items()
        and s["metadata"]["labels"].get(expression["key"]) in expression["values"]
    ]
    assert {s["metadata"]["name"] for s in selected} == {
        "market-spine-api",
        "market-spine-worker-metrics",
    }
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    service_ports = {p["name"] for s in selected for p in s["spec"]["ports"]}
    assert endpoint_ports == service_ports == {"http", "metrics"}
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_policy_every_container_is_locked_down(rendered):
    """Resources, non-root, read-only root filesystem and a pinned image on every container."""
    _, _, objects = rendered
    problems = []
    workloads = [o for o in objects if pod_spec(o) is not None]
    assert len(workloads) >= 7
    for obj in workloads:
        spec = pod_spec(obj)
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if spec["securityContext"].get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod runAsNonRoot")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: service account token mounted")
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec.get("initContainers", []) + spec["containers"]:
            c = f"{where}/{container['name']}"
            security = container.get("securityContext", {})
            if security.get("runAsNonRoot") is not True:
                problems.append(f"{c}: runAsNonRoot")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{c}: readOnlyRootFilesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{c}: allowPrivilegeEscalation")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{c}: capabilities not dropped")
            for section in ("requests", "limits"):
                if set(container.get("resources", {}).get(section, {})) < {"cpu", "memory"}:
                    problems.append(f"{c}: resources.{section} cpu and memory")
            image = container["image"]
            match = re.fullmatch(
                r"[^:@\s]+:(?P<tag>[\w][\w.-]{0,127})(@sha256:[0-9a-f]{64})?", image
            )
            if not match or match["tag"] == "latest":
                problems.append(f"{c}: image {image!r} has no pinned tag")
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if mounts.get("/tmp") not in tmp_volumes:
                problems.append(f"{c}: /tmp is not an emptyDir")
    assert problems == []


def test_policy_long_running_containers_have_probes(rendered):
    """Deployments are probed; the API on /health/*. Jobs and the test pod run to completion."""
    _, _, objects = rendered
    problems = []
    for deployment in find(objects, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            c = f"{deployment['metadata']['name']}/{container['name']}"
            if "livenessProbe" not in container:
                problems.append(f"{c}: no livenessProbe")
            if container.get("ports") and "readinessProbe" not in container:
                problems.append(f"{c}: serves a port but has no readinessProbe")
    assert problems == []
    (api,) = pod_spec(find(objects, "Deployment", "market-spine-api")[0])["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert api["args"] == ["api"]


def test_services_hpas_and_pdbs_point_at_real_pods(rendered):
    _, _, objects = rendered
    deployments = {d["metadata"]["name"]: d for d in find(objects, "Deployment")}
    for service in find(objects, "Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= pod_labels(d).items() for d in deployments.values()), service
        for port in service["spec"]["ports"]:
            container_ports = {
                p["name"]
                for d in deployments.values()
                if selector <= pod_labels(d).items()
                for c in pod_spec(d)["containers"]
                for p in c.get("ports", [])
            }
            assert port["targetPort"] in container_ports
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert "replicas" not in deployments[target["name"]]["spec"]  # the HPA owns replicas
    for pdb in find(objects, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"].items()
        assert sum(selector <= pod_labels(d).items() for d in deployments.values()) == 1


def test_a_worker_deployment_per_lane_with_its_own_replicas_and_queue():
    objects = render(workers={"lanes": {"normal": {"replicas": 5}, "backfill": {"replicas": 0}}})
    by_lane = {}
    for deployment in find(objects, "Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        if container["args"] == ["worker"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            by_lane[env["SPINE_WORKER_LANES"]] = deployment["spec"]["replicas"]
            assert (
                deployment["spec"]["selector"]["matchLabels"]["market-spine/lane"]
                == env["SPINE_WORKER_LANES"]
            )
    assert by_lane == {"normal": 5, "backfill": 0}


def test_an_added_lane_gets_its_own_deployment_hpa_and_pdb():
    objects = render(
        workers={
            "lanes": {
                "priority": {
                    "replicas": 2,
                    "threads": 16,
                    "autoscaling": {"enabled": True, "maxReplicas": 9},
                    "pdb": {"enabled": True},
                }
            }
        }
    )
    (deployment,) = find(objects, "Deployment", "market-spine-worker-priority")
    env = {e["name"]: e.get("value") for e in pod_spec(deployment)["containers"][0]["env"]}
    assert (env["SPINE_WORKER_LANES"], env["SPINE_WORKER_THREADS"]) == ("priority", "16")
    (hpa,) = find(objects, "HorizontalPodAutoscaler", "market-spine-worker-priority")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 9)
    assert find(objects, "PodDisruptionBudget", "market-spine-worker-priority")


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(rendered):
    _, values, objects = rendered
    (job,) = find(objects, "Job", "market-spine-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["migrate"]
    (secret_ref,) = container["envFrom"]
    hook_secrets = [
        s for s in find(objects, "Secret") if "helm.sh/hook" in s["metadata"].get("annotations", {})
    ]
    if values.get("secret", {}).get("existingSecret"):
        # The Secret exists before the release: the hook reads it directly.
        assert secret_ref["secretRef"]["name"] == values["secret"]["existingSecret"]
        assert hook_secrets == []
    else:
        # The release's own Secret does not exist yet when pre-install hooks run: a hook copy.
        (hook_secret,) = hook_secrets
        assert secret_ref["secretRef"]["name"] == hook_secret["metadata"]["name"]
        assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"


def test_generated_secret_key_is_shared_and_strong():
    objects = render()
    secrets = {s["metadata"]["name"]: s["data"] for s in find(objects, "Secret")}
    assert set(secrets) == {"market-spine", "market-spine-migrate"}
    assert secrets["market-spine"] == secrets["market-spine-migrate"]
    assert set(secrets["market-spine"]) == SECRET_KEYS | {"REDIS_URL"}
    key = base64.b64decode(secrets["market-spine"]["DJANGO_SECRET_KEY"]).decode()
    assert len(key) == 64 and len(set(key)) > 10


def test_existing_secret_is_used_and_nothing_secret_rendered():
    objects = render(secret={"create": False, "existingSecret": "ops-managed"})
    assert find(objects, "Secret") == []
    refs = {
        ref["secretRef"]["name"]
        for o in objects
        if pod_spec(o) is not None
        for c in pod_spec(o)["containers"]
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    }
    assert refs == {"ops-managed"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": {"tag": "latest"}}, "image.tag: use a fixed version, not latest"),
        ({"secret": {"create": False, "existingSecret": ""}}, "secret.existingSecret"),
        ({"secret": {"databaseUrl": ""}}, "secret.databaseUrl is required"),
    ],
)
def test_bad_values_fail_the_render(overrides, message):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(**overrides)


def test_allowed_hosts_cover_ingress_service_and_probes(rendered):
    name, _, objects = rendered
    (config,) = find(objects, "ConfigMap", "market-spine")
    hosts = config["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    assert "market-spine-api" in hosts
    if name == "production":
        assert "spine.example.com" in hosts
        assert config["data"]["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://spine.example.com"
    (api,) = pod_spec(find(objects, "Deployment", "market-spine-api")[0])["containers"]
    pod_ip = next(e for e in api["env"] if e["name"] == "POD_IP")
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_plain_manifests_equal_a_fresh_render():
    assert render_manifests.differences() == []


def test_plain_manifests_are_valid_and_hold_no_secret():
    objects = objects_of(
        {p.name: p.read_text() for p in sorted(render_manifests.OUTPUT.glob("*.yaml"))}
    )
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert find(objects, "Secret") == []
    assert find(objects, "Pod") == []  # the helm test pod is not a plain manifest
    assert find(objects, "Namespace", "market-spine")
