"""Fail when the JUnit report is missing, ran no test, or skipped any test."""

import sys
import xml.etree.ElementTree as ET  # noqa: S405 - our own pytest report


def main(path: str) -> int:
    try:
        root = ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as exc:
        print(f"ci: no readable JUnit report at {path}: {exc}")
        return 1
    cases = root.iter("testcase")
    total, skipped = 0, []
    for case in cases:
        total += 1
        if case.find("skipped") is not None:
            skipped.append(f"{case.get('classname')}::{case.get('name')}")
    if total == 0:
        print("ci: the test run executed no test")
        return 1
    if skipped:
        print(f"ci: {len(skipped)} test(s) were skipped; CI runs every test:")
        for name in skipped:
            print(f"  - {name}")
        return 1
    print(f"ci: {total} tests ran, none skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
