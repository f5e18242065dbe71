"""Hypothesis profiles for the fuzz tests.

`make test` uses `spine`: derandomized (the same examples every run, so CI cannot flake on a
newly found input) and bounded. `HYPOTHESIS_PROFILE=explore` searches far more inputs at random:
run it by hand after changing the parser or the API, and turn what it finds into a fixed test.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "spine",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    parent=settings.get_profile("spine"),
    derandomize=False,
    max_examples=5_000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "spine"))
