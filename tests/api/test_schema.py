"""The OpenAPI document: valid OpenAPI 3, and every operation in it answers as documented
(status code listed, body matching the documented schema), for an operator and for anonymous."""

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from rest_framework.test import APIClient

BODIES = {
    ("post", "/api/v1/executions/"): {"pipeline": "diagnostics.sleep", "params": {"seconds": 0}},
    ("post", "/api/v1/executions/{id}/cancel/"): {"reason": "schema test"},
    ("post", "/api/v1/executions/{id}/retry/"): {"reason": "schema test"},
    ("post", "/api/v1/dead-letters/{id}/replay/"): {"note": "schema test"},
    ("post", "/api/v1/dead-letters/{id}/resolve/"): {
        "resolution": "ignored",
        "note": "schema test",
    },
    ("post", "/api/v1/lanes/{name}/pause/"): {"reason": "schema test"},
    ("post", "/api/v1/lanes/{name}/resume/"): {"reason": "schema test"},
    ("post", "/api/v1/schedules/"): {
        "name": "schema-create",
        "pipeline": "diagnostics.noop",
        "cron": "0 6 * * 1-5",
        "time_zone": "America/New_York",
    },
    ("put", "/api/v1/schedules/{id}/"): {
        "name": "schema-put",
        "pipeline": "diagnostics.noop",
        "cron": "30 6 * * 1-5",
        "time_zone": "America/New_York",
    },
    ("patch", "/api/v1/schedules/{id}/"): {"enabled": False},
}
OPERATION_COUNT = 27  # executions, dead letters, pipelines, lanes, schedules, OTC reads


@pytest.fixture
def spec(db):
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(spec):
    for path, item in sorted(spec["paths"].items()):
        for method, operation in sorted(item.items()):
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def make_schedule():
    import uuid

    from executions import scheduler
    from executions.models import Schedule

    return scheduler.save_schedule(
        Schedule(
            name=f"schema-{uuid.uuid4().hex[:8]}",
            pipeline="diagnostics.noop",
            cron="0 6 * * 1-5",
            time_zone="America/New_York",
        )
    )


def concrete(path, execution_in, dead_letter):
    """The path with ids of fresh objects in the state the operation needs."""
    if path.startswith("/api/v1/executions/{id}"):
        status = "pending" if path.endswith("/cancel/") else "failed"
        return path.replace("{id}", str(execution_in(status).id))
    if path.startswith("/api/v1/dead-letters/{id}"):
        return path.replace("{id}", str(dead_letter().pk))
    if path.startswith("/api/v1/schedules/{id}"):
        return path.replace("{id}", str(make_schedule().pk))
    if path.startswith("/api/v1/pipelines/{name}"):
        return path.replace("{name}", "diagnostics.sleep")
    return path.replace("{name}", "normal")


def check_documented(spec, operation, response):
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{status} is not documented: {sorted(documented)}"
    content = documented[status].get("content", {}).get("application/json")
    if content is None:
        return
    schema = {**content["schema"], "components": spec["components"]}
    OAS30Validator(schema).validate(response.json())


def test_schema_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert len(list(operations(spec))) == OPERATION_COUNT


def test_every_operation_answers_as_documented(
    spec, api_client_for, execution_in, dead_letter, recording_backend
):
    operator, anonymous = api_client_for("operator"), api_client_for("anonymous")
    seen = []
    for template, method, operation in operations(spec):
        path = concrete(template, execution_in, dead_letter)
        body = BODIES.get((method, template))

        response = getattr(operator, method)(path, body, format="json")
        assert 200 <= response.status_code < 300, (method, path, response.content)
        check_documented(spec, operation, response)

        refused = getattr(anonymous, method)(path, body, format="json")
        assert refused.status_code == 401
        check_documented(spec, operation, refused)
        seen.append((method, template, response.status_code))
    assert len(seen) == OPERATION_COUNT


def test_documented_errors_match_the_answers(spec, api_client_for, execution_in, recording_backend):
    viewer, operator = api_client_for("viewer"), api_client_for("operator")
    submit = spec["paths"]["/api/v1/executions/"]["post"]
    check_documented(
        spec, submit, viewer.post("/api/v1/executions/", {"pipeline": "x"}, format="json")
    )
    check_documented(
        spec, submit, operator.post("/api/v1/executions/", {"pipeline": "x"}, format="json")
    )
    cancel = spec["paths"]["/api/v1/executions/{id}/cancel/"]["post"]
    done = execution_in("completed")
    conflict = operator.post(f"/api/v1/executions/{done.id}/cancel/", {}, format="json")
    assert conflict.status_code == 409
    check_documented(spec, cancel, conflict)


def test_docs_page_uses_our_own_static_files_not_a_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "https://" not in page


@pytest.mark.slow
def test_collected_static_files_are_served_without_debug(settings, tmp_path):
    """Production: `collectstatic`, then whitenoise serves the admin's and the docs' assets."""
    from django.core.management import call_command
    from django.test import Client

    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = False
    call_command("collectstatic", interactive=False, verbosity=0)

    client = Client()  # a new handler: whitenoise indexes the fresh STATIC_ROOT
    for asset in (
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/admin/css/base.css",
    ):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content)
