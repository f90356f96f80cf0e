"""Turns `go test -json` output (stdin) into JUnit XML (argv[1]) for tests/summarize.py; echoes each test's verdict.

Every top-level test and subtest is one testcase; a package that fails without a failing test (a build error,
a panic outside a test) is a failed testcase of its own, so nothing that went wrong is lost. Exits 1 when anything
failed.
"""

import json
import sys
import xml.etree.ElementTree as ET


def main(out_path: str) -> int:
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
        if verdict == "fail":
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
    sys.exit(main(sys.argv[1]))
