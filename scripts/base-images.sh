#!/usr/bin/env bash
set -euo pipefail
# Makes the debian:bookworm and debian:bookworm-slim base images locally when docker has none and cannot pull them.
#
#   base-images.sh            make whichever of the two images is missing (nothing to do: returns at once)
#   base-images.sh --force    make both again, even when docker has them (the cached tarballs are reused)
#
# The Dockerfile names debian:bookworm and debian:bookworm-slim, as anyone building it elsewhere would pull them.
# Where no registry is reachable this script stands in for the pull: one `debootstrap --variant=minbase bookworm`
# from the Debian mirror apt uses here, imported as debian:bookworm, and a slimmed copy of the same tree
# (no docs, man pages or locales, as Debian's own -slim images) imported as debian:bookworm-slim.
# The tarballs are cached in ${KROUTE_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/base}: the second run on a
# machine whose docker lost its images only imports them (seconds); delete that directory to bootstrap afresh.
# KROUTE_DEBIAN_MIRROR overrides the mirror (default: the first deb.debian.org-style URI of the host's apt sources).

cache="${KROUTE_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kroute/base}"
suite=bookworm
force=false
[ "${1:-}" = "--force" ] && force=true

say() { echo "base-images: $*" >&2; }
die() { say "$*"; exit 1; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if ! $force && have_image "debian:$suite" && have_image "debian:$suite-slim"; then
  exit 0
fi

# The mirror apt already uses on this machine: the one place packages are known to come from.
host_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list |
    grep -oE 'https?://[^ ]*/debian/?' | grep -v -- '-security' | head -n 1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${KROUTE_DEBIAN_MIRROR:-$(host_mirror)}"
mirror=${mirror%/}

work=""
cleanup() { if [ -n "$work" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# What Debian's images set up for containers: an apt that keeps no .deb files and no Translations.
configure_for_containers() {
  local root=$1
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log \
    "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
  : >"$root/etc/machine-id"
  echo "$suite" >"$root/etc/hostname"
}

# Debian's -slim variant: dpkg never unpacks docs, man pages or translations, and the ones already there go.
slim_down() {
  local root=$1
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
}

# A tarball of the tree with fixed ownership-preserving options, so `docker import` sees what debootstrap made.
pack() { tar --numeric-owner --xattrs -C "$1" -cf "$2.partial" . && mv "$2.partial" "$2"; }

full_tar="$cache/$suite.tar"
slim_tar="$cache/$suite-slim.tar"
mkdir -p "$cache"

if [ ! -s "$full_tar" ] || [ ! -s "$slim_tar" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing: run 'make deps' (or apt-get install debootstrap)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  work=$(mktemp -d "$cache/.bootstrap.XXXXXX")
  root="$work/rootfs"
  say "debootstrap --variant=minbase $suite from $mirror into $root (a few minutes the first time)"
  started=$(date +%s)
  # debootstrap's progress, one line per stage; its per-package lines (Retrieving x, Configuring y...) are dropped.
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$root" "$mirror" 2>&1 |
    grep --line-buffered -E '^(W|E):|^I: .*(\.\.\.|successfully)$' |
    grep --line-buffered -vE '^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [^ ]+\.\.\.$' |
    sed -u 's/^/base-images:   /' >&2 ||
    { [ -x "$root/bin/sh" ] && [ -f "$root/var/lib/dpkg/status" ]; } ||
    die "debootstrap failed; its log is $root/debootstrap/debootstrap.log"
  [ ! -e "$root/debootstrap" ] || die "debootstrap did not finish; see $root/debootstrap/debootstrap.log"
  configure_for_containers "$root"
  say "packing $full_tar"
  pack "$root" "$full_tar"
  slim_down "$root"
  say "packing $slim_tar"
  pack "$root" "$slim_tar"
  say "bootstrapped in $(( $(date +%s) - started ))s"
fi

import() {
  local tarball=$1 tag=$2
  say "docker import $tarball as $tag"
  docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase $suite from $mirror (scripts/base-images.sh)" "$tarball" "$tag" >/dev/null
}
if $force || ! have_image "debian:$suite"; then import "$full_tar" "debian:$suite"; fi
if $force || ! have_image "debian:$suite-slim"; then import "$slim_tar" "debian:$suite-slim"; fi
docker image ls --format '  {{.Repository}}:{{.Tag}} {{.Size}}' debian >&2
