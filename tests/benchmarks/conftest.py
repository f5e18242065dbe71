"""The benchmark harness of SPEC §11 (`make bench`): every figure next to its baseline.

Each benchmark calls `bench.record(...)` with its figure and the baseline measured in the same run
on the same machine; at the end the session prints one table and writes
bench-results/bench.json (plus the figures' details). A ratio is figure / baseline: for a rate
higher is better, for a latency or a duration lower is better; `target` says which way it must go.
"""

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    target: str = ""  # e.g. ">= 0.25" (of the ratio) or "<= 50 ms" (of the value)
    details: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def meets(self) -> bool | None:
        if not self.target:
            return None
        op, number, *unit = self.target.split()
        measured = self.value if unit else self.ratio
        return measured >= float(number) if op == ">=" else measured <= float(number)


class Results:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.started = time.time()

    def record(self, name, value, unit, baseline_name, baseline, target="", **details) -> Figure:
        figure = Figure(name, float(value), unit, baseline_name, float(baseline), target, details)
        self.figures.append(figure)
        print(f"\n[bench] {name}: {value:,.3f} {unit} vs {baseline_name} {baseline:,.3f}")
        return figure

    def table(self) -> str:
        head = (
            f"{'figure':<44} {'value':>12} {'unit':<8} {'baseline':<30} {'baseline':>11} "
            f"{'ratio':>7} {'target':<12} ok"
        )
        lines = [head, "-" * len(head)]
        for f in self.figures:
            ok = {True: "yes", False: "NO", None: "-"}[f.meets()]
            lines.append(
                f"{f.name:<44} {f.value:>12,.2f} {f.unit:<8} {f.baseline_name:<30} "
                f"{f.baseline:>11,.2f} {f.ratio:>7.3f} {f.target:<12} {ok}"
            )
        return "\n".join(lines)

    def write(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / "bench.json"
        path.write_text(
            json.dumps(
                {
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                    },
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                    "seconds": round(time.time() - self.started, 1),
                    "figures": [
                        {**asdict(f), "ratio": round(f.ratio, 4), "meets_target": f.meets()}
                        for f in self.figures
                    ],
                },
                indent=2,
            )
        )
        return path


_results = Results()


@pytest.fixture(scope="session")
def bench() -> Results:
    return _results


def pytest_sessionfinish(session, exitstatus):
    if not _results.figures:
        return
    path = _results.write()
    print("\n\nMarket Spine benchmarks (SPEC §11), each figure against its baseline in this run")
    print(_results.table())
    print(f"written to {path.relative_to(ROOT)}")


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
