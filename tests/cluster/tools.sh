#!/usr/bin/env bash
set -euo pipefail
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, helm and the Gateway API echo server
# (echo-basic) from the Go modules in tests/cluster/tools, once, into a cache outside the tree.
#
#   tools.sh build   build unless the cache already holds binaries for these go.mod/go.sum files; prints progress
#   tools.sh path    print the directory holding the binaries (exit 3 when they are not built yet)
#   tools.sh go      print the go command a build uses, fetching Go from the module proxy first when none is found
#   tools.sh node    build the node agent (tests/cluster/node, kroute's own code) unless cached; print its path
#   tools.sh conformance   build the Gateway API conformance suite's test binary (tools/conformance) unless cached;
#                          print its path
#   tools.sh gateway-crds standard|experimental   print the directory of that channel's Gateway API CRDs in the Go
#                          module cache (the gateway-api release the conformance module requires; downloaded if needed)
#
# The cache is ${KROUTE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/tools}/<key>/bin; the key is a hash of
# the modules' go.mod and go.sum files and of the build flags, so an unchanged go.mod never rebuilds.
#
# KROUTE_GO names the go command to use; otherwise `go` on PATH, then /usr/local/go/bin/go, whichever is new enough
# (KROUTE_GO_SEARCH=none looks at neither); otherwise Go is fetched once from the Go module proxy (the first URL in
# GOPROXY, else Go's default) as the module golang.org/toolchain into the cache's go/ directory.
# KROUTE_TOOLS_PROGRESS_SECONDS sets how often a build reports progress (default 30).

here=$(cd "$(dirname "$0")" && pwd)
modules_dir="$here/tools"
modules=(kube helm echo)
declare -A tools_of=([kube]="kube-apiserver kube-controller-manager kube-scheduler kubectl etcd" [helm]="helm" [echo]="echo-basic")
cache_root="${KROUTE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/tools}"
go_cache="$cache_root/go"
progress_every="${KROUTE_TOOLS_PROGRESS_SECONDS:-30}"

say() { echo "tools: $*" >&2; }
die() { say "$*"; exit 1; }

# The version a module requires of a dependency, read from go.mod without running go.
required_version() { awk -v m="$2" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$modules_dir/$1/go.mod"; }

kube_version=$(required_version kube k8s.io/kubernetes)
etcd_version=$(required_version kube go.etcd.io/etcd/server/v3)
helm_version=$(required_version helm helm.sh/helm/v4)
echo_version=$(required_version echo sigs.k8s.io/gateway-api/conformance)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] && [ -n "$helm_version" ] && [ -n "$echo_version" ] ||
  die "cannot read the tool versions from $modules_dir/*/go.mod"

# -X settings so `kube-apiserver --version`, `kubectl version` and `helm version` tell the truth (etcd's version is
# a constant in its source). The module proxy gives no commit hash; "archive" is Kubernetes' own tree state for
# builds from a source archive.
# $1 is the build date; the key is computed with a placeholder, since the date is an output, not an input.
kube_ldflags() {
  local major minor pkg flags="-s -w"
  major=${kube_version#v}; major=${major%%.*}
  minor=${kube_version#v*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$1"
  done
  echo "$flags"
}
helm_ldflags() {
  echo "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
}

cache_key() {
  {
    for m in "${modules[@]}"; do cat "$modules_dir/$m/go.mod" "$modules_dir/$m/go.sum"; done
    kube_ldflags BUILD-DATE
    helm_ldflags
  } | sha256sum | cut -c1-16
}

key=$(cache_key)
tools_dir="$cache_root/$key"
bin_dir="$tools_dir/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm echo-basic)

is_built() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
}

# The Go release to fetch when none is found: the newest `toolchain` line of the tool modules, else their newest `go`
# line (k8s.io/kubernetes sets it, and an older toolchain cannot build it). A bare "1.N" is release 1.N.0.
required_go() {
  local m version
  version=$(for m in "${modules[@]}"; do awk '$1 == "toolchain" { sub(/^go/, "", $2); print $2 }' "$modules_dir/$m/go.mod"; done |
    sort -V | tail -1)
  [ -n "$version" ] ||
    version=$(for m in "${modules[@]}"; do awk '$1 == "go" { print $2 }' "$modules_dir/$m/go.mod"; done | sort -V | tail -1)
  case "$version" in *.*.*) echo "$version" ;; *) echo "$version.0" ;; esac
}

# The version of the go command $1 ("1.26.0"), or nothing when it does not run.
go_version() { local v; v=$("$1" env GOVERSION 2>/dev/null) || return 0; echo "${v#go}"; }

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

# The first URL of GOPROXY (a list separated by ',' or '|', as Go reads it); Go's own default when GOPROXY is unset.
module_proxy() {
  local entry
  for entry in $(echo "${GOPROXY:-https://proxy.golang.org}" | tr ',|' '  '); do
    case "$entry" in https://* | http://*) echo "${entry%/}"; return 0 ;; esac
  done
  return 1
}

go_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "no Go toolchain for $(uname -m) to fetch; set KROUTE_GO=/path/to/go" ;;
  esac
}

# Fetches Go $1 from the module proxy, where it is the module golang.org/toolchain (as GOTOOLCHAIN=go$1 fetches it),
# into $go_cache/go$1. The zip's go.sum hash must match the checksum database's line for it (read through the
# proxy); GOSUMDB=off skips that check and only prints the zip's sha256.
fetch_go() {
  local version=$1 proxy arch module_version dest work url hash_line expected
  proxy=$(module_proxy) || die "no Go found and GOPROXY ($GOPROXY) names no proxy URL to fetch Go $version from;
  set KROUTE_GO=/path/to/go (Go >= $version) or put go on PATH"
  arch=$(go_arch)
  module_version="v0.0.1-go$version.linux-$arch"
  dest="$go_cache/go$version"
  url="$proxy/golang.org/toolchain/@v/$module_version"
  mkdir -p "$go_cache"
  exec 8>"$go_cache/.lock"
  flock 8
  if [ -x "$dest/bin/go" ]; then
    return 0
  fi
  work=$(mktemp -d "$go_cache/.fetch-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  local rc=0
  curl -fsS -o "$work/info" "$url.info" || rc=$?
  # curl's exit 22 is an HTTP error from the proxy; anything else is the network or TLS, which curl just described.
  [ "$rc" -ne 22 ] || die "the module proxy $proxy has no Go $version for linux-$arch ($url.info)"
  [ "$rc" -eq 0 ] || die "cannot reach the module proxy $proxy (curl exit $rc)"
  say "no Go >= $version found; fetching Go $version (linux-$arch) from the module proxy $proxy"
  local progress=(-sS)
  [ -t 2 ] && progress=(--progress-bar)
  curl -fL "${progress[@]}" -o "$work/toolchain.zip" "$url.zip" || die "downloading $url.zip failed"
  say "downloaded $(( $(stat -c %s "$work/toolchain.zip") / 1048576 )) MB, sha256 $(sha256sum "$work/toolchain.zip" | cut -c1-64)"
  if [ "${GOSUMDB:-}" = off ]; then
    expected=""
    say "GOSUMDB=off: not checking the zip against the checksum database"
  else
    # Go's default checksum database; its name is the first word of GOSUMDB when that is set.
    local sumdb="${GOSUMDB:-sum.golang.org}"
    sumdb=${sumdb%% *}
    hash_line=$(curl -fsS "$proxy/sumdb/$sumdb/lookup/golang.org/toolchain@$module_version" |
      awk -v v="$module_version" '$1 == "golang.org/toolchain" && $2 == v { print $3; exit }') ||
      die "the checksum database $sumdb (through $proxy) has no line for golang.org/toolchain@$module_version"
    [ -n "$hash_line" ] || die "the checksum database $sumdb has no line for golang.org/toolchain@$module_version"
    expected=$hash_line
  fi
  # A module zip's go.sum hash ("h1:", Go's dirhash) covers every file; the entries carry a module@version/ prefix
  # that is dropped when unpacking. Module zips keep no file modes: the commands get theirs back here.
  python3 - "$work/toolchain.zip" "$work/go" "golang.org/toolchain@$module_version/" "$expected" <<'PYTHON' ||
import base64, hashlib, os, sys, zipfile
archive, target, prefix, expected = sys.argv[1:]
with zipfile.ZipFile(archive) as z:
    files = sorted((i for i in z.infolist() if not i.is_dir()), key=lambda i: i.filename)
    summary = "".join(f"{hashlib.sha256(z.read(i)).hexdigest()}  {i.filename}\n" for i in files)
    actual = "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
    if expected and actual != expected:
        sys.exit(f"tools: the zip's hash {actual} is not the checksum database's {expected}")
    for info in files:
        if not info.filename.startswith(prefix) or ".." in info.filename.split("/"):
            sys.exit(f"tools: unexpected entry {info.filename} in the toolchain zip")
        path = os.path.join(target, info.filename[len(prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(z.read(info))
        parts = info.filename[len(prefix):].split("/")
        executable = parts[0] == "bin" or (parts[:2] == ["pkg", "tool"] and len(parts) == 4)
        os.chmod(path, 0o755 if executable else 0o644)
print(f"tools: unpacked {len(files)} files, go.sum hash {actual}" + (" (matches the checksum database)" if expected else ""),
      file=sys.stderr)
PYTHON
    die "unpacking the Go $version toolchain failed"
  [ "$(go_version "$work/go/bin/go")" = "$version" ] || die "the fetched toolchain's bin/go does not run as Go $version"
  rm -rf "$dest"
  mv "$work/go" "$dest"
  rm -rf "$work"
  trap - EXIT
  say "Go $version is in $dest"
}

# The go command to build with: KROUTE_GO when set; else the first of `go` on PATH and /usr/local/go/bin/go that is
# new enough (KROUTE_GO_SEARCH=none skips both); else Go fetched once from the module proxy into $go_cache.
find_go() {
  local need candidate have
  need=$(required_go)
  if [ -n "${KROUTE_GO:-}" ]; then
    have=$(go_version "$KROUTE_GO")
    [ -n "$have" ] || die "KROUTE_GO=$KROUTE_GO is not a working go command"
    version_at_least "$have" "$need" || die "KROUTE_GO=$KROUTE_GO is Go $have; k8s.io/kubernetes $kube_version needs Go >= $need"
    echo "$KROUTE_GO"
    return 0
  fi
  if [ "${KROUTE_GO_SEARCH:-}" != none ]; then
    for candidate in "$(command -v go || true)" /usr/local/go/bin/go; do
      [ -n "$candidate" ] && [ -x "$candidate" ] || continue
      have=$(go_version "$candidate")
      if [ -n "$have" ] && version_at_least "$have" "$need"; then
        echo "$candidate"
        return 0
      fi
      say "not using $candidate: Go ${have:-(does not run)} is older than the $need the tool modules need"
    done
  fi
  candidate="$go_cache/go$need/bin/go"
  [ -x "$candidate" ] || fetch_go "$need"
  echo "$candidate"
}

# Prints one progress line every $progress_every seconds while $1's build log grows.
report_progress() {
  local name=$1 log=$2 total=$3 start=$SECONDS compiled
  while sleep "$progress_every"; do
    compiled=$(grep -c -E '^[A-Za-z0-9_.~/-]+$' "$log" 2>/dev/null || true)
    say "[$name] $compiled of at most $total packages compiled, $(elapsed $start)"
  done
}

# Stops a process and everything it started (go build runs the compiler and linker as children).
kill_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

elapsed() { local s=$(( SECONDS - $1 )); printf '%dm%02ds' $(( s / 60 )) $(( s % 60 )); }

# Builds every tool of module $1 with one `go build`, so the packages they share compile once.
build_module() {
  local name=$1 out=$2 log=$3 ldflags total ticker rc=0 start=$SECONDS
  local dir="$modules_dir/$name"
  cd "$dir"
  say "[$name] resolving packages and downloading modules"
  total=$("$go" list -deps tool 2>>"$log" | wc -l) || { say "[$name] resolving packages failed"; return 1; }
  case "$name" in
    kube) ldflags=$(kube_ldflags "$(date -u +%Y-%m-%dT%H:%M:%SZ)") ;;
    helm) ldflags=$(helm_ldflags) ;;
    *) ldflags="-s -w" ;;
  esac
  say "[$name] compiling ${tools_of[$name]} ($total packages)"
  report_progress "$name" "$log" "$total" &
  ticker=$!
  CGO_ENABLED=0 "$go" build -v -trimpath -ldflags "$ldflags" -o "$out/" tool >>"$log" 2>&1 || rc=$?
  kill_tree "$ticker"
  wait "$ticker" 2>/dev/null || true
  [ "$rc" -ne 0 ] || say "[$name] built ${tools_of[$name]} in $(elapsed "$start")"
  return "$rc"
}

build() {
  if is_built; then
    say "binaries for key $key are cached in $bin_dir"
    return 0
  fi
  go=$(find_go)
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly"
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.lock"
  if ! flock -n 9; then
    say "another build holds $cache_root/.lock; waiting for it"
    flock 9
  fi
  if is_built; then
    say "binaries for key $key were built while waiting: $bin_dir"
    return 0
  fi

  local work="$cache_root/.building-$key" start=$SECONDS name failed=() pids=()
  rm -rf "$work"
  mkdir -p "$work/bin"
  trap 'for p in "${pids[@]}"; do kill_tree "$p"; done; wait 2>/dev/null || true' EXIT INT TERM
  say "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $kube_version, etcd $etcd_version, helm $helm_version and echo-basic $echo_version with $("$go" env GOVERSION)"
  say "the first build takes about 25 minutes on 2 cores; the result is cached in $cache_root"
  for name in "${modules[@]}"; do
    : >"$work/$name.log"
    build_module "$name" "$work/bin" "$work/$name.log" &
    pids+=($!)
  done
  for i in "${!modules[@]}"; do
    wait "${pids[$i]}" || failed+=("${modules[$i]}")
  done
  trap - EXIT INT TERM
  if [ ${#failed[@]} -gt 0 ]; then
    for name in "${failed[@]}"; do
      say "[$name] build FAILED; the last lines of $work/$name.log:"
      grep -v -E '^[A-Za-z0-9_.~/-]+$' "$work/$name.log" | tail -n 30 | sed 's/^/    /' >&2
    done
    die "build failed; the full logs are in $work"
  fi
  # go build names a /vN module's main package after the element before it: etcd's is server/v3.
  mv "$work/bin/server" "$work/bin/etcd"
  {
    echo "kube-apiserver $kube_version"
    echo "kube-controller-manager $kube_version"
    echo "kube-scheduler $kube_version"
    echo "kubectl $kube_version"
    echo "etcd $etcd_version"
    echo "helm $helm_version"
    echo "echo-basic $echo_version (sigs.k8s.io/gateway-api/conformance)"
    echo "built with $("$go" env GOVERSION) in $(elapsed $start) on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$work/VERSIONS"
  rm -rf "$tools_dir"
  mv "$work" "$tools_dir"
  find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name go ! -name conformance -exec rm -rf {} +
  say "built in $(elapsed $start): $bin_dir"
}

# The node agent is kroute's own code and changes with the tree, so it is not one of the tools above: it is cached by
# a hash of its sources in $cache_root/node/<hash>, and Go's build cache makes a rebuild after an edit quick.
node_dir="$here/node"
build_node() {
  local hash out work
  hash=$(cd "$node_dir" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-16)
  out="$cache_root/node/$hash"
  if [ -x "$out/kroute-node" ]; then
    echo "$out/kroute-node"
    return 0
  fi
  go=$(find_go)
  mkdir -p "$cache_root/node"
  work=$(mktemp -d "$cache_root/node/.building-XXXXXX")
  say "[node] building the node agent (kroute-node)"
  if ! (cd "$node_dir" && GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0 \
        "$go" build -trimpath -ldflags "-s -w" -o "$work/kroute-node" .) >"$work/build.log" 2>&1; then
    sed 's/^/    /' "$work/build.log" >&2
    rm -rf "$work"
    die "[node] build failed"
  fi
  rm -rf "$out"
  mv "$work" "$out"
  # Older builds go after a day (not at once: another checkout's cluster may be starting its own).
  find "$cache_root/node" -mindepth 1 -maxdepth 1 -type d ! -name "$hash" -mmin +1440 -exec rm -rf {} +
  say "[node] built $out/kroute-node"
  echo "$out/kroute-node"
}

# The Gateway API conformance suite is not one of the tools either: only `make conformance` needs it, and a go.mod
# bump for it must not rebuild the cluster. Its test binary (`go test -c` of the suite's package, whose
# TestConformance takes the suite's flags) is cached by a hash of tools/conformance's go.mod and go.sum and of the
# build flags in $cache_root/conformance/<key>/.
conformance_dir="$modules_dir/conformance"
conformance_package=sigs.k8s.io/gateway-api/conformance
conformance_binary=gateway-conformance.test
conformance_ldflags="-s -w"

conformance_version() {
  local version
  version=$(required_version conformance "$conformance_package")
  [ -n "$version" ] || die "cannot read the version of $conformance_package from $conformance_dir/go.mod"
  # The suite deploys echo-basic as its backends, and the echo image is the echo module's echo-basic.
  [ "$version" = "$echo_version" ] ||
    die "tools/conformance requires $conformance_package $version but tools/echo $echo_version: the suite and the echo-basic it runs as backends must be one release"
  echo "$version"
}

build_conformance() {
  local version key out work start=$SECONDS total ticker rc=0
  version=$(conformance_version)
  key=$({ cat "$conformance_dir/go.mod" "$conformance_dir/go.sum"; echo "-trimpath $conformance_ldflags"; } |
    sha256sum | cut -c1-16)
  out="$cache_root/conformance/$key"
  if [ -x "$out/$conformance_binary" ]; then
    echo "$out/$conformance_binary"
    return 0
  fi
  go=$(find_go)
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0
  mkdir -p "$cache_root/conformance"
  exec 7>"$cache_root/conformance/.lock"
  if ! flock -n 7; then
    say "[conformance] another build holds $cache_root/conformance/.lock; waiting for it"
    flock 7
  fi
  if [ -x "$out/$conformance_binary" ]; then
    echo "$out/$conformance_binary"
    return 0
  fi
  work=$(mktemp -d "$cache_root/conformance/.building-XXXXXX")
  trap '[ -z "${ticker:-}" ] || kill_tree "$ticker"' EXIT INT TERM
  cd "$conformance_dir"
  say "[conformance] resolving packages and downloading modules"
  total=$("$go" list -deps -test "$conformance_package" 2>>"$work/build.log" | wc -l) ||
    die "[conformance] resolving packages failed; the log is $work/build.log"
  say "[conformance] compiling the Gateway API conformance suite $version ($total packages) with $("$go" env GOVERSION)"
  report_progress conformance "$work/build.log" "$total" &
  ticker=$!
  # `go build -v` names each package as it compiles them (what the progress lines count); `go test -c` then finds
  # them in Go's build cache and only compiles the test files and links.
  { "$go" build -v -trimpath "$conformance_package" &&
    "$go" test -c -trimpath -ldflags "$conformance_ldflags" -o "$work/$conformance_binary" "$conformance_package"
  } >>"$work/build.log" 2>&1 || rc=$?
  kill_tree "$ticker"
  wait "$ticker" 2>/dev/null || true
  ticker=""
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    say "[conformance] build FAILED; the last lines of $work/build.log:"
    grep -v -E '^[A-Za-z0-9_.~/-]+$' "$work/build.log" | tail -n 30 | sed 's/^/    /' >&2
    die "[conformance] build failed; the full log is in $work"
  fi
  echo "$conformance_package $version (go test -c), built with $("$go" env GOVERSION) in $(elapsed "$start") on $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    >"$work/VERSIONS"
  rm -rf "$out"
  mv "$work" "$out"
  # Older builds go after a day (not at once: another checkout may be running its own version of the suite).
  find "$cache_root/conformance" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -mmin +1440 -exec rm -rf {} +
  say "[conformance] built $out/$conformance_binary in $(elapsed "$start")"
  echo "$out/$conformance_binary"
}

# The Gateway API CRDs are not kept in this tree: they come with the sigs.k8s.io/gateway-api module the conformance
# module requires, from the Go module proxy, checked against go.sum (config/crd/<channel>/ of that module).
gateway_crds() {
  local channel=$1 dir
  case "$channel" in
    standard | experimental) ;;
    *) die "usage: $0 gateway-crds standard|experimental" ;;
  esac
  conformance_version >/dev/null
  go=$(find_go)
  dir=$(cd "$conformance_dir" && export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" &&
    "$go" mod download sigs.k8s.io/gateway-api && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api) ||
    die "cannot download sigs.k8s.io/gateway-api $(required_version conformance sigs.k8s.io/gateway-api) from the module proxy"
  [ -d "$dir/config/crd/$channel" ] || die "no config/crd/$channel in $dir"
  echo "$dir/config/crd/$channel"
}

case "${1:-}" in
  build) build ;;
  node) build_node ;;
  conformance) build_conformance ;;
  gateway-crds) gateway_crds "${2:-}" ;;
  go)
    go=$(find_go)
    say "$("$go" version) at $go"
    echo "$go"
    ;;
  path)
    if is_built; then
      echo "$bin_dir"
    else
      say "not built yet (run 'make cluster-tools' or '$0 build')"
      exit 3
    fi
    ;;
  *)
    echo "usage: $0 build|path|go|node|conformance|gateway-crds standard|experimental" >&2
    exit 2
    ;;
esac
