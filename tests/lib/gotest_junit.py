"""Turns `go test -json` output (stdin) into JUnit XML (argv[1]) for tests/summarize.py; echoes each test's verdict.

Every top-level test and subtest is one testcase; a package that fails without a failing test (a build error,
a panic outside a test) is a failed testcase of its own, so nothing that went wrong is lost. Exits 1 when anything
failed.

argv[2], when given, is a file of known failures: lines "<name> <why>" ('#' starts a comment), where <name> is a
test's name below its top-level test (the Gateway API suite's "HTTPRouteWeight" under "TestConformance"). A failure
of such a test, of its subtests, or of a parent only through them, is written as skipped with "known failure: <why>"
and does not count; a listed test that passes is named, so the list only ever shrinks.
"""

import json
import sys
import xml.etree.ElementTree as ET


def read_known(path: str) -> dict[str, str]:
    known = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, why = line.partition(" ")
                known[name] = why.strip() or "listed"
    return known


def known_reason(test: str, known: dict[str, str]) -> str | None:
    parts = test.split("/")
    return known.get(parts[1]) if len(parts) > 1 else None


def main(out_path: str, known_path: str | None = None) -> int:
    known = read_known(known_path) if known_path else {}
    verdicts: dict[tuple[str, str], str] = {}
    output: dict[tuple[str, str], list[str]] = {}
    elapsed: dict[tuple[str, str], float] = {}
    for line in sys.stdin:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            print(line, end="")  # the go command's own messages, such as a build failure
            continue
        key = (event.get("Package", ""), event.get("Test", ""))
        action = event.get("Action")
        if action == "build-output":  # compiler messages (Go >= 1.24 reports them as events)
            print(event.get("Output", ""), end="")
        elif action == "output":
            output.setdefault(key, []).append(event.get("Output", ""))
        elif action in ("pass", "fail", "skip"):
            verdicts[key] = action
            elapsed[key] = event.get("Elapsed", 0.0)
    # A parent (or the package) that failed only because known failures below it did is a known failure too.
    unknown_failures = [(p, t) for (p, t), v in verdicts.items() if v == "fail" and t and known_reason(t, known) is None
                         and not any(q == p and u.startswith(t + "/") for (q, u), w in verdicts.items() if w == "fail")]
    only_known = bool(known) and not unknown_failures
    for (package, test), verdict in verdicts.items():
        if verdict == "pass" and known_reason(test, known) is not None and test.count("/") == 1:
            print(f"known failure passes now: remove {test.split('/')[1]} from {known_path}")
    suite = ET.Element("testsuite", name="go")
    failed = 0
    for (package, test), verdict in sorted(verdicts.items()):
        if not test:
            # A package's own verdict counts only when it failed with no failing test to show for it.
            if verdict != "fail" or any(p == package and t and v == "fail" for (p, t), v in verdicts.items()):
                continue
        name = test or "(package)"
        case = ET.SubElement(suite, "testcase", classname=package, name=name,
                             time=f"{elapsed[(package, test)]:.3f}")
        print(f"{verdict.upper():4} {package} {name}")
        why = known_reason(test, known) or (None if test.count("/") else ("known failures below it" if only_known else None))
        if verdict == "fail" and why is not None:
            print(f"     known failure: {why}")
            ET.SubElement(case, "skipped", message=f"known failure: {why}")
        elif verdict == "fail":
            failed += 1
            failure = ET.SubElement(case, "failure", message="failed")
            failure.text = "".join(output.get((package, test), []))[-20000:]
        elif verdict == "skip":
            ET.SubElement(case, "skipped")
    if not verdicts:
        case = ET.SubElement(suite, "testcase", classname="go", name="go test")
        ET.SubElement(case, "failure", message="go test reported no result")
        failed += 1
    ET.ElementTree(suite).write(out_path, encoding="unicode", xml_declaration=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
