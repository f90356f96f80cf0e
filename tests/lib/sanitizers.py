"""Tests against the sanitizer build (`make asan`: clang -fsanitize=address,undefined, in build-asan/).

Select it with KROUTE_BUILD=<build-asan>: the tests then run build-asan's kroute-agent, kroute-table and
ngx_http_kroute_module.so. The executables carry the ASan/UBSan runtime themselves; Debian's nginx does
not, so nginx gets clang's shared runtime preloaded (nginx_env) before it loads the module. See
docs/module.md, "Sanitizer builds".

A sanitizer report fails the test that produced it:
- nginx writes its reports to its error log (nginx puts the log on its stderr); the runner
  (tests/integration/conftest.py, Nginx.stop) looks for them there and in the stderr before that;
- the sanitized executables write theirs where ASAN_OPTIONS/UBSAN_OPTIONS log_path says; the asan suites
  point that into KROUTE_SANITIZER_REPORTS, which this file, loaded as a pytest plugin
  (`-p sanitizers`), checks after every test and at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

# Lines that only a sanitizer report contains.
MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: AddressSanitizer",
           "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer")

# nginx: no leak check (nginx frees its long-lived pools only partly at exit, so LeakSanitizer would
# report nginx, not the module); stop at the first error, with a stack.
NGINX_ASAN_OPTIONS = "detect_leaks=0:abort_on_error=1:halt_on_error=1:handle_segv=1:detect_stack_use_after_return=0"
UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1"


def instrumented(binary: Path) -> bool:
    """Whether an executable or shared object was built with AddressSanitizer."""
    try:
        return b"__asan_init" in Path(binary).read_bytes()
    except OSError:
        return False


def asan_runtime() -> str:
    """clang's shared ASan runtime (it carries UBSan's handlers too), from libclang-rt-14-dev."""
    explicit = os.environ.get("KROUTE_ASAN_RUNTIME")
    if explicit:
        candidates = [explicit]
    else:
        candidates = []
        for cc in ("clang", "clang-14"):
            if shutil.which(cc):
                out = subprocess.run([cc, "-print-file-name=libclang_rt.asan-x86_64.so"], capture_output=True,
                                     text=True, timeout=30)
                candidates.append(out.stdout.strip())
    for candidate in candidates:
        if candidate and os.path.isabs(candidate) and os.path.exists(candidate):
            return candidate
    raise RuntimeError("the module is built with AddressSanitizer but clang's runtime "
                       "libclang_rt.asan-x86_64.so was not found (install libclang-rt-14-dev, or set "
                       f"KROUTE_ASAN_RUNTIME); looked at {candidates!r}")


def symbolizer() -> str | None:
    for name in ("llvm-symbolizer", "llvm-symbolizer-14"):
        found = shutil.which(name)
        if found:
            return found
    return None


def nginx_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Debian's nginx loading the sanitized module: the runtime preloaded, reports to
    stderr (nginx's error log), no leak check. A log_path the suite set for the executables is dropped:
    nginx's workers run as another user and could not write there."""
    env = dict(os.environ if base is None else base)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = asan_runtime() + (" " + preload if preload else "")
    env["ASAN_OPTIONS"] = NGINX_ASAN_OPTIONS
    env["UBSAN_OPTIONS"] = UBSAN_OPTIONS
    sym = symbolizer()
    if sym:
        env["ASAN_SYMBOLIZER_PATH"] = sym
    return env


def findings(text: str, context: int = 40) -> list[str]:
    """The sanitizer reports in a log: each marker line with the lines after it (the stack)."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        if any(marker in lines[i] for marker in MARKERS):
            found.append("\n".join(lines[i:i + context]))
            i += context
        else:
            i += 1
    return found


# ---- reports written to files (log_path) ------------------------------------------------------------


def reports_dir() -> Path | None:
    value = os.environ.get("KROUTE_SANITIZER_REPORTS")
    return Path(value) if value else None


def report_files() -> set[Path]:
    directory = reports_dir()
    if directory is None or not directory.is_dir():
        return set()
    return {p for p in directory.iterdir() if p.is_file()}


def describe(paths: set[Path]) -> str:
    parts = []
    for path in sorted(paths):
        try:
            text = path.read_text(errors="replace")
        except OSError as e:
            text = f"(unreadable: {e})"
        parts.append(f"---- {path.name}\n{text[-6000:]}")
    return "\n".join(parts)


_seen: set[Path] = set()


@pytest.fixture(autouse=True)
def _sanitizer_reports() -> Iterator[None]:
    """Fails the test in whose time a sanitized process wrote a report (function-scoped fixtures, such as
    the agents a test started, are torn down before this check)."""
    before = report_files()
    yield
    new = report_files() - before - _seen
    _seen.update(new)
    if new:
        pytest.fail("sanitizer reports while this test ran:\n" + describe(new), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Reports written after the last per-test check (module- and session-scoped fixtures stop later)."""
    late = report_files() - _seen
    if late:
        print("\nsanitizer reports after the tests (module or session teardown):\n" + describe(late))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
