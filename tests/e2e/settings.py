"""Settings of the API process the end-to-end tests start: the project's, plus a submit view.

There is no submit endpoint in this branch's API yet; `tests.e2e.urls` adds a tiny one that calls
the dispatcher inside a request, like the real API does.
"""

from spine_project.settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.urls"
