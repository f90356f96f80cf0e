#!/usr/bin/env bash
set -euo pipefail
# Configures a private copy of an nginx source tree for building the kroute module against it.
# usage: configure-nginx.sh NGINX_SRC DEST MODULE_DIR OUT_DIR [configure flags...]
# Flags: the ones given, else NGINX_SRC/conf_flags (Debian's nginx-dev), else --with-compat --with-http_ssl_module.
# Writes DEST (the configured tree) and copies ngx_auto_config.h, ngx_auto_headers.h and the generated
# modules list into OUT_DIR, the files meson tracks.

src=$1 dest=$2 module_dir=$3 out_dir=$4
shift 4
flags=("$@")
if [ ${#flags[@]} -eq 0 ]; then
  if [ -f "$src/conf_flags" ]; then
    # shellcheck disable=SC1091
    source "$src/conf_flags"
    flags=("${NGX_CONF_FLAGS[@]}")
  else
    flags=(--with-compat --with-http_ssl_module)
  fi
fi
[ -x "$src/configure" ] || { echo "configure-nginx: $src has no configure script (set -Dnginx_src)" >&2; exit 1; }

# A private temporary tree: two builds of the same directory may run this at once.
tmp=$(mktemp -d "$dest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/." "$tmp"
chmod -R u+w "$tmp"
log="$out_dir/nginx-configure.log"
if ! (cd "$tmp" && ./configure "${flags[@]}" --add-dynamic-module="$module_dir") >"$log" 2>&1; then
  echo "configure-nginx: nginx configure failed, see $log" >&2
  tail -20 "$log" >&2
  exit 1
fi
rm -rf "$dest"
mv "$tmp" "$dest"
cp "$dest/objs/ngx_auto_config.h" "$dest/objs/ngx_auto_headers.h" \
   "$dest/objs/ngx_http_kroute_module_modules.c" "$out_dir/"
