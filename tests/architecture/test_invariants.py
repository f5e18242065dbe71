"""SPEC §10 invariants, checked on the source: small AST rules plus the import-linter contracts."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("executions", "dlq", "otc", "spine_project")
LEDGER_MODELS = {"Execution", "ExecutionEvent"}


def source_files():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return dotted(node.func) + "()"
    return "?"


def is_interface(path: str) -> bool:
    parts = path.split("/")
    return (
        parts[-1] == "admin.py"
        or "api" in parts
        or "management" in parts
        or parts[-1] in ("views.py", "health.py")
    )


def test_rules_see_the_code():
    files = {rel(p) for p in source_files()}
    assert {
        "executions/dispatcher.py",
        "executions/runner.py",
        "executions/transitions.py",
    } <= files


def test_only_the_dispatcher_creates_executions():
    offenders = []
    for path in source_files():
        name = rel(path)
        for call in calls(path):
            target = dotted(call.func)
            creates = target in ("Execution", "models.Execution") or any(
                target.endswith(f"Execution.objects.{verb}")
                for verb in ("create", "bulk_create", "get_or_create", "update_or_create")
            )
            if creates and name != "executions/dispatcher.py":
                offenders.append(f"{name}:{call.lineno} {target}")
    assert offenders == []


def test_only_the_runner_calls_pipeline_handlers():
    offenders = [
        f"{rel(path)}:{call.lineno}"
        for path in source_files()
        for call in calls(path)
        if isinstance(call.func, ast.Attribute)
        and call.func.attr == "handler"
        and rel(path) != "executions/runner.py"
    ]
    assert offenders == []


def test_interfaces_never_import_the_runner():
    offenders = []
    for path in source_files():
        name = rel(path)
        if not is_interface(name):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if any(m == "executions.runner" for m in modules):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_status_is_written_only_by_transitions():
    """`.update(status=…)` appears only in the transition module (compare-and-set)."""
    offenders = []
    for path in source_files():
        name = rel(path)
        for call in calls(path):
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr in ("update", "bulk_update")
                and any(kw.arg == "status" for kw in call.keywords)
                and name != "executions/transitions.py"
            ):
                offenders.append(f"{name}:{call.lineno}")
    assert offenders == []


def ledger_sql_writes(path: Path):
    """(line, verb) of every SQL string that writes the ledger: UPDATE or INSERT INTO a string
    that names the table or takes it from `Execution._meta.db_table`/`ExecutionEvent`'s."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            names = " ".join(
                dotted(v.value) for v in node.values if isinstance(v, ast.FormattedValue)
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text, names = node.value, ""
        else:
            continue
        ledger = "executions_execution" in text or any(
            f"{model}._meta.db_table" in names for model in LEDGER_MODELS
        )
        for verb in ("UPDATE", "INSERT INTO", "DELETE FROM"):
            if ledger and verb in text.upper():
                yield node.lineno, verb


def test_ledger_sql_is_written_only_by_the_dispatcher_and_transitions():
    """Hand-written SQL that writes the ledger (README "Performance") stays in two modules:
    the dispatcher inserts executions; the transition module changes them and adds events."""
    allowed = {
        "executions/dispatcher.py": {"INSERT INTO"},
        "executions/transitions.py": {"UPDATE", "INSERT INTO"},
    }
    offenders = []
    seen = set()
    for path in source_files():
        name = rel(path)
        for lineno, verb in ledger_sql_writes(path):
            seen.add((name, verb))
            if verb not in allowed.get(name, set()):
                offenders.append(f"{name}:{lineno} {verb}")
    assert offenders == []
    assert {
        ("executions/transitions.py", "UPDATE"),
        ("executions/transitions.py", "INSERT INTO"),
    } <= seen  # the rule sees the statements it guards


def test_hot_path_sql_runs_only_in_the_dispatcher_and_transitions():
    """`run_sql` bypasses Django's cursor (no query log, no DB metrics): two modules only."""
    allowed = {"executions/dispatcher.py", "executions/transitions.py"}
    callers = {
        rel(path)
        for path in source_files()
        for call in calls(path)
        if dotted(call.func).split(".")[-1] == "run_sql"
    }
    assert callers <= allowed
    assert "executions/dispatcher.py" in callers  # the rule sees the calls it guards


def test_interfaces_do_not_save_or_delete_ledger_rows():
    """Admin, API and commands call services; they never save, update or delete ledger rows."""
    offenders = []
    for path in source_files():
        name = rel(path)
        if not is_interface(name):
            continue
        for call in calls(path):
            if isinstance(call.func, ast.Attribute) and call.func.attr in (
                "save",
                "delete",
                "update",
                "bulk_update",
            ):
                receiver = dotted(call.func.value)
                if any(model in receiver for model in (*LEDGER_MODELS, "DeadLetter", "execution")):
                    offenders.append(f"{name}:{call.lineno} {receiver}.{call.func.attr}")
    assert offenders == []


def test_executions_never_import_dlq_or_otc():
    offenders = []
    for path in (ROOT / "executions").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            if any(m.split(".")[0] in ("dlq", "otc", "spine_project") for m in mods):
                offenders.append(f"{rel(path)}:{node.lineno}")
    assert offenders == []


def test_import_linter_contracts_hold():
    lint_imports = shutil.which("lint-imports") or str(ROOT / ".venv/bin/lint-imports")
    if not Path(lint_imports).exists():
        pytest.fail("lint-imports is not installed (make venv)")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
