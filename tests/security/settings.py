"""Settings of the processes the security tests start: the project's, plus a probe pipeline.

`tests.security` is installed as an app so its `pipelines` module is discovered by the API and
the worker alike, exactly like a real app's pipelines.
"""

from spine_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.security"]  # noqa: F405
