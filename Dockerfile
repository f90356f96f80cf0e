# kroute: Debian's nginx with the kroute module, kroute-agent and kroute-table, in one image for both
# containers of the pod (nginx and agent). Build: `make image` (or `docker build -t kroute:0.1.0 .`).
#
# The module is compiled against the nginx-dev source of the same Debian release whose nginx the runtime
# stage installs (bookworm: nginx 1.22.1); the runtime stage refuses to build if the versions differ.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config meson ninja-build \
      nginx-dev libpcre2-dev zlib1g-dev libssl-dev \
      libcurl4-openssl-dev libjsoncpp-dev libfmt-dev libxxhash-dev libyaml-cpp-dev \
      libcli11-dev libcpp-httplib-dev doctest-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the three shipped artifacts; the tests meson also knows about are not compiled here.
RUN meson setup /build --buildtype=release \
 && ninja -C /build module/ngx_http_kroute_module.so agent/kroute-agent routetable/tool/kroute-table \
 && mkdir -p /out \
 && install -m 0644 /build/module/ngx_http_kroute_module.so /out/ \
 && install -m 0755 -s /build/agent/kroute-agent /build/routetable/tool/kroute-table /out/ \
 && strip --strip-unneeded /out/ngx_http_kroute_module.so \
 && dpkg-query -W -f='${source:Upstream-Version}\n' nginx-dev > /out/nginx-version

FROM debian:${DEBIAN_RELEASE}-slim
ARG DEBIAN_FRONTEND=noninteractive

# nginx (Debian's core build, no extra modules) and the shared libraries kroute-agent links; security
# updates the base image does not have yet. (libcap2-bin provides setcap; nginx-common needs it anyway.)
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends \
      nginx libcurl4 libjsoncpp25 libfmt9 libyaml-cpp0.7 libcpp-httplib0.11 libssl3 libcap2-bin \
 && groupadd --system --gid 101 kroute \
 && useradd --system --uid 101 --gid 101 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin kroute \
 # nginx binds port 80 as uid 101: the file capability works where the pod adds NET_BIND_SERVICE and
 # allows privilege escalation (the chart's nginx container); nothing else in the image has one.
 && setcap cap_net_bind_service=+ep /usr/sbin/nginx \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
      /etc/nginx/sites-available /etc/nginx/sites-enabled /etc/nginx/conf.d /etc/nginx/modules-enabled \
      /var/www/html \
 # The places a non-root nginx and agent write. With a read-only root filesystem the pod mounts emptyDirs
 # over them (the chart does); without, these directories serve.
 && install -d -o 101 -g 101 -m 0755 /run/kroute /var/lib/nginx /run/nginx \
 && chmod 1777 /run

COPY --from=build /out/nginx-version /usr/share/kroute/nginx-build-version
COPY --from=build /out/ngx_http_kroute_module.so /usr/lib/nginx/modules/
COPY --from=build /out/kroute-agent /out/kroute-table /usr/local/bin/
COPY nginx-conf/nginx.conf /etc/nginx/nginx.conf
# Defaults of the client-address and security-header settings; the chart mounts its own over them.
COPY nginx-conf/kroute/ /etc/nginx/kroute/

# A module built against another nginx would be refused at load time in the cluster; refuse it here instead.
RUN built=$(cat /usr/share/kroute/nginx-build-version) \
 && runs=$(nginx -v 2>&1 | sed 's|.*nginx/||') \
 && if [ "$built" != "$runs" ]; then echo "module built for nginx $built, image has nginx $runs" >&2; exit 1; fi \
 && nginx -t -q \
 && kroute-agent --help >/dev/null \
 && kroute-table --help >/dev/null

ENV KROUTE_TABLE_DIR=/run/kroute
USER 101:101
EXPOSE 80 10246 10254
CMD ["nginx", "-g", "daemon off;"]

# Last, so a new revision relabels the image without redoing any layer above.
ARG DEBIAN_RELEASE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/kroute/kroute
LABEL org.opencontainers.image.title="kroute" \
      org.opencontainers.image.description="Kubernetes Ingress controller on Debian's nginx that never reloads: nginx + ngx_http_kroute_module + kroute-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:${DEBIAN_RELEASE}-slim"
