"""Sums the JUnit XML results of every suite and prints one line 'N passed, N failed'.

Exits non-zero when any test failed, or when a suite exited non-zero although its XML shows no failure.
"""
import pathlib
import sys
import xml.etree.ElementTree as ET


def count(path):
    passed = failed = skipped = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(results_dir):
    results = pathlib.Path(results_dir)
    total_passed = total_failed = total_skipped = 0
    for xml in sorted(results.glob("*.xml")):
        name = xml.stem
        try:
            passed, failed, skipped = count(xml)
        except ET.ParseError as err:
            print(f"{name}: unreadable results ({err})")
            passed, failed, skipped = 0, 1, 0
        exit_file = results / f"{name}.exit"
        code = int(exit_file.read_text().strip()) if exit_file.exists() else 0
        if code != 0 and failed == 0:
            print(f"{name}: suite exited {code} with no failed test; counting one failure")
            failed = 1
        print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
        total_passed += passed
        total_failed += failed
        total_skipped += skipped
    line = f"{total_passed} passed, {total_failed} failed"
    if total_skipped:
        line += f", {total_skipped} skipped"
    print(line)
    return 1 if total_failed or total_passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
