"""Readiness: 503 with the database unreachable; 200 `degraded` with Redis or the broker down."""

import socket

import pytest
from django.db.utils import ConnectionHandler

from executions.backends.dramatiq import DramatiqBackend


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_postgres():
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "spine",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": closed_port(),
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    yield handler["default"]
    handler.close_all()


def test_ready_is_ok_when_everything_answers(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert {name: c["status"] for name, c in response.json()["checks"].items()} == {
        "database": "ok",
        "backend": "ok",
        "cache": "ok",
    }


def test_ready_is_503_when_the_database_is_unreachable(
    client, db, monkeypatch, unreachable_postgres
):
    monkeypatch.setattr("spine_project.health.connection", unreachable_postgres)
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["cache"]["status"] == "ok"


def test_liveness_does_not_need_the_database(client, monkeypatch, unreachable_postgres):
    monkeypatch.setattr("spine_project.health.connection", unreachable_postgres)
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_is_degraded_when_redis_is_unreachable(client, db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"


def test_ready_is_degraded_when_the_broker_is_unreachable(client, db, monkeypatch):
    from dramatiq.brokers.redis import RedisBroker

    dead_broker = RedisBroker(
        url=f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=1, middleware=[]
    )
    backend = DramatiqBackend.__new__(DramatiqBackend)
    from executions.tasks import ACTORS_BY_LANE

    backend._actors = ACTORS_BY_LANE
    monkeypatch.setattr(DramatiqBackend, "broker", property(lambda self: dead_broker))
    monkeypatch.setattr("spine_project.health.get_backend", lambda: backend)
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["backend"]["status"] == "down"
