#!/usr/bin/env python
"""Django's command-line utility for Market Spine."""

import os
import sys

SERVICE_COMMANDS = {
    "runserver",
    "spine_serve",
    "spine_worker",
    "spine_scheduler",
    "spine_reconcile",
}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spine_project.settings")
    # Services log to stdout (collected by the platform); one-shot commands print their output on
    # stdout, so their logs go to stderr and never mix with what a script parses.
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    os.environ.setdefault("SPINE_LOG_STREAM", "stdout" if command in SERVICE_COMMANDS else "stderr")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
