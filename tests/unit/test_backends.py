"""Backends: one interface, the loader, and a separately installed plugin found by entry point."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from executions.backends import BUILTIN, check_interface, load_backend
from executions.backends.base import Backend
from executions.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parents[2]


def test_local_backend_offers_the_whole_interface():
    backend = load_backend("local")
    assert backend.name == "local"
    assert isinstance(backend, Backend)
    check_interface(backend)


def test_dramatiq_backend_offers_the_whole_interface(settings):
    settings.SPINE_BROKER_URL = "redis://127.0.0.1:6379/15"
    from executions.backends.dramatiq import DramatiqBackend

    backend = DramatiqBackend()
    assert isinstance(backend, Backend)
    check_interface(backend)


def test_every_builtin_backend_is_listed():
    assert sorted(BUILTIN) == ["dramatiq", "local"]


def test_dramatiq_without_a_broker_fails_clearly(settings):
    settings.SPINE_BROKER_URL = ""
    with pytest.raises(BackendUnavailable, match="needs SPINE_BROKER_URL"):
        load_backend("dramatiq")


@pytest.mark.parametrize("name", ["prefect", "dagster", "temporal"])
def test_known_but_missing_adapters_name_what_is_missing(name):
    with pytest.raises(BackendUnavailable) as excinfo:
        load_backend(name)
    assert f"Backend {name!r} is not available" in excinfo.value.message
    assert f"'{name}' entry point" in excinfo.value.message


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(
        BackendUnavailable, match=r"Unknown backend 'nope'. Known backends: dramatiq, local"
    ):
        load_backend("nope")


def test_an_incomplete_backend_is_refused():
    class Half:
        name = "half"

        def submit(self, execution_id, lane, delay_seconds):
            return ""

    with pytest.raises(BackendUnavailable, match=r"lacks the method cancel\(\)"):
        check_interface(Half())


def test_a_backend_with_a_different_signature_is_refused():
    class Odd:
        name = "odd"

        def submit(self, execution_id):
            return ""

        cancel = status = health = queue_depths = submit

    with pytest.raises(BackendUnavailable, match="does not match"):
        check_interface(Odd())


PLUGIN = '''
class EchoBackend:
    """A third-party backend: records what it was given."""

    name = "echo"

    def submit(self, execution_id, lane, delay_seconds):
        return f"echo-{execution_id}"

    def cancel(self, execution_id, backend_run_id):
        return False

    def status(self, execution_id, backend_run_id):
        return {}

    def health(self):
        return {"status": "ok", "backend": "echo"}

    def queue_depths(self):
        return {}


class BrokenBackend:
    name = "broken"
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """Build and install a tiny distribution that registers two backends by entry point."""
    src = tmp_path_factory.mktemp("plugin-src")
    (src / "spine_echo_backend.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "spine-echo-backend"
            version = "0.1.0"

            [tool.setuptools]
            py-modules = ["spine_echo_backend"]

            [project.entry-points."market_spine.backends"]
            echo = "spine_echo_backend:EchoBackend"
            broken = "spine_echo_backend:BrokenBackend"
            """
        )
    )
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        timeout=180,
    )
    return site


def run_with_plugin(site, backend_name):
    code = (
        "import django; django.setup(); "
        "from executions.backends import get_backend; b = get_backend(); "
        "print(b.name, b.submit('x', 'normal', 0))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{site}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "spine_project.settings",
            "DJANGO_DEBUG": "1",
            "SPINE_BACKEND": backend_name,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_separately_installed_plugin_is_loaded_by_name(installed_plugin):
    result = run_with_plugin(installed_plugin, "echo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo echo-x"


def test_a_plugin_that_lacks_methods_fails_at_start_up(installed_plugin):
    result = run_with_plugin(installed_plugin, "broken")
    assert result.returncode != 0
    assert "ImproperlyConfigured: Backend 'broken' lacks the method submit()." in result.stderr


def test_the_plugin_is_not_visible_without_its_distribution():
    with pytest.raises(BackendUnavailable, match="Unknown backend 'echo'"):
        load_backend("echo")


def test_an_unavailable_backend_stops_start_up(settings):
    from django.apps import apps

    from executions.backends import get_backend

    settings.SPINE_BACKEND = "prefect"
    get_backend.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="Backend 'prefect' is not available"):
            apps.get_app_config("executions").ready()
    finally:
        settings.SPINE_BACKEND = "local"
        get_backend.cache_clear()
