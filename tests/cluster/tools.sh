#!/usr/bin/env bash
set -euo pipefail
# Builds kube-apiserver, kubectl, etcd and helm from the Go modules in tests/cluster/tools, once, into a cache outside the tree.
#
#   tools.sh build   build unless the cache already holds binaries for these go.mod/go.sum files; prints progress
#   tools.sh path    print the directory holding the binaries (exit 3 when they are not built yet)
#
# The cache is ${KROUTE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/tools}/<key>/bin; the key is a hash of
# the modules' go.mod and go.sum files and of the build flags, so an unchanged go.mod never rebuilds.
# KROUTE_GO names the go command to use; otherwise `go` on PATH, then /usr/local/go/bin/go.
# KROUTE_TOOLS_PROGRESS_SECONDS sets how often a build reports progress (default 30).

here=$(cd "$(dirname "$0")" && pwd)
modules_dir="$here/tools"
modules=(kube helm)
declare -A tools_of=([kube]="kube-apiserver kubectl etcd" [helm]="helm")
cache_root="${KROUTE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/tools}"
progress_every="${KROUTE_TOOLS_PROGRESS_SECONDS:-30}"

say() { echo "tools: $*" >&2; }
die() { say "$*"; exit 1; }

# The version a module requires of a dependency, read from go.mod without running go.
required_version() { awk -v m="$2" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$modules_dir/$1/go.mod"; }

kube_version=$(required_version kube k8s.io/kubernetes)
etcd_version=$(required_version kube go.etcd.io/etcd/server/v3)
helm_version=$(required_version helm helm.sh/helm/v4)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] && [ -n "$helm_version" ] ||
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
binaries=(kube-apiserver kubectl etcd helm)

is_built() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
}

find_go() {
  local go_cmd="${KROUTE_GO:-}"
  if [ -z "$go_cmd" ]; then
    go_cmd=$(command -v go || true)
    [ -n "$go_cmd" ] || go_cmd=/usr/local/go/bin/go
  fi
  if [ ! -x "$go_cmd" ] && ! command -v "$go_cmd" >/dev/null 2>&1; then
    die "no Go toolchain found (looked for ${KROUTE_GO:-go on PATH and /usr/local/go/bin/go}).
  kube-apiserver, etcd, kubectl and helm are built from source and need Go >= $(required_go).
  Install it from https://go.dev/dl, e.g.: curl -fsSL https://go.dev/dl/go$(required_go).linux-amd64.tar.gz | tar -C /usr/local -xz
  so that /usr/local/go/bin/go exists, or put go on PATH, or set KROUTE_GO=/path/to/go."
  fi
  echo "$go_cmd"
}

# The newest `go` line of the tool modules: k8s.io/kubernetes sets it, and an older toolchain cannot build it.
required_go() {
  local m
  for m in "${modules[@]}"; do awk '$1 == "go" { print $2 }' "$modules_dir/$m/go.mod"; done | sort -V | tail -1
}

check_go_version() {
  local have need
  have=$("$1" env GOVERSION) || die "'$1 env GOVERSION' failed: is $1 a working Go toolchain?"
  have=${have#go}
  need=$(required_go)
  if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    die "Go $have at $1 is too old: k8s.io/kubernetes $kube_version needs Go >= $need.
  Install a newer Go from https://go.dev/dl to /usr/local/go, or put it on PATH, or set KROUTE_GO=/path/to/go."
  fi
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
  if [ "$name" = kube ]; then
    ldflags=$(kube_ldflags "$(date -u +%Y-%m-%dT%H:%M:%SZ)")
  else
    ldflags=$(helm_ldflags)
  fi
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
  check_go_version "$go"
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
  say "building kube-apiserver $kube_version, kubectl $kube_version, etcd $etcd_version and helm $helm_version with $("$go" env GOVERSION)"
  say "the first build takes about 16 minutes on 2 cores; the result is cached in $cache_root"
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
    echo "kubectl $kube_version"
    echo "etcd $etcd_version"
    echo "helm $helm_version"
    echo "built with $("$go" env GOVERSION) in $(elapsed $start) on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$work/VERSIONS"
  rm -rf "$tools_dir"
  mv "$work" "$tools_dir"
  find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
  say "built in $(elapsed $start): $bin_dir"
}

case "${1:-}" in
  build) build ;;
  path)
    if is_built; then
      echo "$bin_dir"
    else
      say "not built yet (run 'make cluster-tools' or '$0 build')"
      exit 3
    fi
    ;;
  *)
    echo "usage: $0 build|path" >&2
    exit 2
    ;;
esac
