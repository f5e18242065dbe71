"""Fixtures for the deployment tests: the chart rendered with each values file."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "market-spine"
BIN = Path(sys.executable).parent


def _load_render_script():
    spec = importlib.util.spec_from_file_location(
        "render_manifests", ROOT / "scripts" / "render_manifests.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_manifests = _load_render_script()
VALUES_FILES = {
    "default": [CHART / "values.yaml"],
    "production": [CHART / "values-production.yaml"],
}


def tool(name: str) -> str:
    """A command-line tool installed in this virtualenv (hadolint, check-jsonschema)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run make venv (it is in the dev extras)"
    return found


def objects_of(manifests: dict[str, str]) -> list[dict]:
    """Every Kubernetes object of a render, in template order."""
    return [
        doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc is not None
    ]


@pytest.fixture(scope="session", params=sorted(VALUES_FILES))
def rendered(request):
    """(name of the values file, its values, the rendered objects), for each values file."""
    values = render_manifests.load_values(*VALUES_FILES[request.param])
    return request.param, values, objects_of(render_manifests.render_chart(values))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def pod_spec(obj: dict) -> dict | None:
    """The pod spec inside a workload object, or None for other kinds."""
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_labels(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]
