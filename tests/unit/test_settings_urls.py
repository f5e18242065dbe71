"""Broker URLs get network timeouts unless they set their own."""

from spine_project.settings import _with_query_defaults


def test_timeouts_are_added_to_a_bare_url():
    url = _with_query_defaults("redis://127.0.0.1:6379/0", {"socket_timeout": "10"})
    assert url == "redis://127.0.0.1:6379/0?socket_timeout=10"


def test_the_urls_own_values_win_and_other_parameters_stay():
    url = _with_query_defaults(
        "amqp://u:p@mq:5672/%2F?socket_timeout=3&heartbeat=30",
        {"socket_timeout": "10", "blocked_connection_timeout": "30"},
    )
    assert (
        url == "amqp://u:p@mq:5672/%2F?socket_timeout=3&blocked_connection_timeout=30&heartbeat=30"
    )
