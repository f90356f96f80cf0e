#!/usr/bin/env bash
set -euo pipefail
# Builds the test echo image kroute/echo-basic:<version>: the Gateway API project's echo server
# (sigs.k8s.io/gateway-api/conformance/echo-basic, built with the cluster tools, CGO_ENABLED=0) alone on an empty
# base. It answers every request with JSON naming the pod (env POD_NAME, NAMESPACE), the path, host and headers;
# HTTP on :3000 (HTTP_PORT), h2c on :3001 (H2C_PORT); TLS on :8443 when TLS_SERVER_CERT/TLS_SERVER_PRIVKEY are set.
# Nothing is pulled: the image is one layer imported from a tarball. An image made from the same binary is kept.

root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "echo-image: $*" >&2; }

bash "$root/tests/cluster/tools.sh" build
bin=$(bash "$root/tests/cluster/tools.sh" path)
version=$(awk '$1 == "sigs.k8s.io/gateway-api/conformance" { print $2; exit }' "$root/tests/cluster/tools/echo/go.mod")
image="kroute/echo-basic:$version"
digest=$(sha256sum "$bin/echo-basic" | cut -c1-16)

if [ "$(docker image inspect -f '{{index .Config.Labels "kroute.dev/binary"}}' "$image" 2>/dev/null)" = "$digest" ]; then
  echo "$image"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$bin/echo-basic" "$work/echo-basic"
tar -C "$work" --owner=0 --group=0 -cf "$work/rootfs.tar" echo-basic
docker import \
  --change 'ENTRYPOINT ["/echo-basic"]' \
  --change 'USER 65534:65534' \
  --change 'EXPOSE 3000 3001 8443' \
  --change "LABEL kroute.dev/binary=$digest org.opencontainers.image.source=https://github.com/kubernetes-sigs/gateway-api org.opencontainers.image.version=$version" \
  "$work/rootfs.tar" "$image" >/dev/null
say "built $image ($(du -h "$work/echo-basic" | cut -f1) binary)"
echo "$image"
