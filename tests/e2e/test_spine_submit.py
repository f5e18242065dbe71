"""`spine_submit` as a user runs it, in a real process on the embedded backend."""

import json

from dlq.models import DeadLetter
from executions.models import Execution


def final_json(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{") :])


def test_sleep_completes_and_exits_zero(manage):
    result = manage("spine_submit", "diagnostics.sleep", "--params", '{"seconds": 0.2}', "--wait")

    assert result.returncode == 0, result.stderr
    execution_id = result.stdout.splitlines()[0]
    out = final_json(result.stdout)
    assert out["id"] == execution_id
    assert (out["status"], out["attempt"]) == ("completed", 1)
    assert out["result"] == {"slept_seconds": 0.2, "attempt": 1}
    row = Execution.objects.get(pk=execution_id)
    assert (row.status, row.trigger_source) == ("completed", "cli")


def test_fail_attempts_completes_on_attempt_three_with_two_growing_retries(manage):
    result = manage(
        "spine_submit",
        "diagnostics.sleep",
        "--params",
        '{"fail_attempts": 2, "seconds": 0}',
        "--wait",
    )

    assert result.returncode == 0, result.stderr
    out = final_json(result.stdout)
    assert (out["status"], out["attempt"]) == ("completed", 3)
    retries = (
        Execution.objects.get(pk=out["id"]).events.filter(kind="retry_scheduled").order_by("id")
    )
    delays = [e.data["delay_seconds"] for e in retries]
    assert len(delays) == 2
    assert delays[0] < delays[1]


def test_permanent_failure_ends_failed_and_exits_non_zero(manage):
    result = manage(
        "spine_submit", "diagnostics.sleep", "--params", '{"permanent_failure": true}', "--wait"
    )

    assert result.returncode == 1
    out = final_json(result.stdout)
    assert (out["status"], out["error_type"]) == ("failed", "PermanentError")
    assert "ended failed" in result.stderr


def test_a_pipeline_that_keeps_failing_is_dead_lettered_once(manage):
    result = manage(
        "spine_submit",
        "diagnostics.sleep",
        "--params",
        '{"fail_attempts": 10, "seconds": 0}',
        "--wait",
    )

    assert result.returncode == 1
    out = final_json(result.stdout)
    assert (out["status"], out["attempt"]) == ("dead_lettered", 3)
    letter = DeadLetter.objects.get()
    assert (str(letter.execution_id), letter.reason, letter.attempts) == (
        out["id"],
        "max_attempts",
        3,
    )


def test_bad_params_exit_non_zero_naming_the_field(manage):
    result = manage("spine_submit", "diagnostics.sleep", "--params", '{"seconds": "abc"}', "--wait")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "invalid_params: Invalid params for diagnostics.sleep: seconds." in result.stderr
    assert Execution.objects.count() == 0


def test_unknown_pipeline_and_bad_json_are_clear_errors(manage):
    unknown = manage("spine_submit", "nope.pipeline")
    assert unknown.returncode == 1
    assert "pipeline_not_found: Unknown pipeline 'nope.pipeline'." in unknown.stderr

    bad_json = manage("spine_submit", "diagnostics.noop", "--params", "{seconds: 1}")
    assert bad_json.returncode == 1
    assert "--params is not valid JSON" in bad_json.stderr
    assert Execution.objects.count() == 0


def test_without_wait_it_prints_only_the_id_and_the_work_still_runs(manage):
    result = manage("spine_submit", "diagnostics.sleep", "--params", '{"seconds": 0.1}')

    assert result.returncode == 0, result.stderr
    (execution_id,) = result.stdout.split()
    assert Execution.objects.get(pk=execution_id).status == "completed"


def test_help_explains_the_command(manage):
    result = manage("spine_submit", "--help")
    assert result.returncode == 0
    assert "exit code is 0 only for completed" in " ".join(result.stdout.split())
