#!/usr/bin/env bash
set -euo pipefail
# Checks that a plain Debian machine gets everything from `make deps`: a fresh debian:bookworm container, this tree.
#
# The container gets the tree as it is (tracked and untracked-but-not-ignored files, uncommitted changes included;
# no build directories) and, with nothing else installed: make (the one package `make deps` cannot install for
# itself), then `make deps`, an import of every module that scripts/, tests/ and bench/ import, Go fetched from the
# module proxy (tools.sh go; the kube tools are not built), `make all`, the unit tests built with ASan/UBSan, and the
# suites unit, unit-asan and integration. Each set-up step counts as a test case, so the last line, 'N passed,
# N failed', covers them and the suites together. The container is removed on exit.
# Needs root and a Docker engine with the image debian:bookworm (`make base-images` makes it without a registry).
# GOPROXY and GOSUMDB are passed through, and so are the host's local CA certificates (/usr/local/share/ca-certificates). KROUTE_CLEAN_SUITES overrides the suites run ("unit unit-asan integration").

root=$(cd "$(dirname "$0")/.." && pwd)
image=debian:bookworm
name="kroute-clean-debian-$$"
suites="${KROUTE_CLEAN_SUITES:-unit unit-asan integration}"

say() { echo "check-clean-debian: $*" >&2; }

cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

docker image inspect "$image" >/dev/null 2>&1 || { say "no $image image: run 'make base-images'"; exit 1; }

# What runs inside: every step is recorded as a test case of the suite "clean-debian" and the run goes on after a
# failed step, so the summary names what broke. Writes its JUnit XML with printf: python3 may be what is missing.
inside=$(cat <<'INSIDE'
set -uo pipefail
cd /src
export KROUTE_BUILD=/src/build KROUTE_BUILD_ASAN=/src/build-asan
setup_results=/tmp/clean-debian
mkdir -p "$setup_results"
cases=""
passed=0 failed=0
step() {
  local label=$1 start=$SECONDS rc=0
  shift
  echo "=== $label"
  "$@" >"$setup_results/step.log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    cases+="<testcase name=\"$label\" time=\"$((SECONDS - start))\"/>"
    tail -n 3 "$setup_results/step.log"
  else
    failed=$((failed + 1))
    cases+="<testcase name=\"$label\"><failure message=\"exit $rc\"/></testcase>"
    tail -n 40 "$setup_results/step.log"
  fi
  echo "=== $label: exit $rc after $((SECONDS - start))s"
}
install_make() { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make; }
# The third-party modules the tree imports: every top-level import in scripts/, tests/ and bench/ that is neither
# in the standard library nor one of the tree's own files.
imported_modules() {
  /usr/bin/python3 - <<'PYTHON'
import ast, pathlib, sys
files = [p for d in ("scripts", "tests", "bench") for p in pathlib.Path(d).rglob("*.py")]
own = {p.stem for p in files}
found = set()
for path in files:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
print("\n".join(sorted(m for m in found - own if m not in sys.stdlib_module_names)))
PYTHON
}
fetch_go() {
  local go
  go=$(KROUTE_GO_SEARCH=none bash tests/cluster/tools.sh go) && "$go" version
}
asan_unit_tests() { make build-asan/build.ninja && ninja -C build-asan tests/unit/unit-tests; }

step "apt-get install make" install_make
step "make deps" make deps
step "make deps again is a no-op" bash -c '[ -z "$(bash scripts/deps.sh)" ]'
modules=$(imported_modules 2>/dev/null || true)
[ -n "$modules" ] || step "list the imported python modules" false
for module in $modules; do
  step "python import $module" /usr/bin/python3 -c "import $module"
done
step "Go from the module proxy" fetch_go
step "make all" make all
case " $SUITES " in *" unit-asan "*) step "build-asan unit tests" asan_unit_tests ;; esac

bash tests/run-suites.sh $SUITES
# The suites' results and the set-up steps, summed in one line.
printf '<testsuite name="clean-debian" tests="%d" failures="%d">%s</testsuite>\n' \
  "$((passed + failed))" "$failed" "$cases" >"$KROUTE_BUILD/test-results/clean-debian.xml"
echo "=== every suite and the set-up steps of the clean machine"
exec /usr/bin/python3 tests/summarize.py "$KROUTE_BUILD/test-results"
INSIDE
)

start=$SECONDS
say "copying the tree into a fresh $image container ($name)"
# Docker turns IPv6 off in a container's network namespace; a plain machine has ::1, and the integration tests use it.
# Docker also drops CAP_SYS_PTRACE, without which root may not read /proc/PID/maps of nginx's workers (another
# user), as the pick-up tests do; root on a plain machine has it.
docker create --name "$name" --sysctl net.ipv6.conf.all.disable_ipv6=0 --sysctl net.ipv6.conf.lo.disable_ipv6=0 \
  --cap-add SYS_PTRACE \
  -e GOPROXY="${GOPROXY:-}" -e GOSUMDB="${GOSUMDB:-}" -e SUITES="$suites" \
  -w /src "$image" bash -c "$inside" >/dev/null
# Tracked files as they are in the work tree, and new files that are not ignored: no build directories.
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
  tar --null -T - --transform 's,^,src/,' -cf -) | docker cp - "$name:/"
# A machine that reaches the module proxy through a TLS-inspecting gateway trusts that gateway's CA as a local
# certificate; the container trusts the same ones, once `make deps` installs ca-certificates.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  tar -C / -cf - usr/local/share/ca-certificates | docker cp - "$name:/"
fi
rc=0
docker start -a "$name" || rc=$?
elapsed=$((SECONDS - start))
say "finished in $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s (exit $rc)"
exit "$rc"
