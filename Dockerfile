# syntax=docker/dockerfile:1
#
# Three images from one build stage:
#   docker build -t kong-service-registry/kong .                        (default: Kong 3.9 + the plugin)
#   docker build --target adminsvc -t kong-service-registry/adminsvc .  (admin service + srctl)
#   docker build --target echo-backend -t kong-service-registry/echo-backend .  (demo backend)
# deploy/docker-compose.yml builds all three. The default target is the LAST
# stage of this file, so the Kong stage stays at the bottom.

ARG GO_VERSION=1.26.8
ARG KONG_VERSION=3.9

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
# The release, x.y.z (Kong refuses any other plugin VERSION). Empty means the
# VERSION file; --build-arg VERSION=1.2.3 overrides it, with another x.y.z.
ARG VERSION=
# CGO off: the binaries run on distroless/static and inside the Kong image
# (whose libc we must not depend on).
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    VERSION="${VERSION:-$(cat VERSION)}" && \
    echo "$VERSION" | grep -Eqx '(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)' || \
      { echo "VERSION=$VERSION is not x.y.z (Kong refuses the plugin)" >&2; exit 1; } && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ ./plugins/service-registry ./adminsvc ./adminsvc/srctl ./deploy/echo-backend

# adminsvc: the registry API. distroless "nonroot" runs as uid/gid 65532.
# It listens on :81 (the go-proxy registry port) although it is not root:
# Docker (20.10+) and containerd 2 set net.ipv4.ip_unprivileged_port_start=0
# in container network namespaces, and the compose file and the Kubernetes
# manifest set that sysctl explicitly for older engines. Where neither is
# possible, set SR_LISTEN=:8081 and publish 81 -> 8081.
FROM gcr.io/distroless/static-debian12:nonroot AS adminsvc
COPY --from=build /out/adminsvc /out/srctl /usr/local/bin/
ENV SR_LISTEN=:81
EXPOSE 81
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/adminsvc"]

# echo-backend: a tiny HTTP backend for the quick start; it carries srctl so
# a Kubernetes preStop hook can deregister it.
FROM gcr.io/distroless/static-debian12:nonroot AS echo-backend
COPY --from=build /out/echo-backend /out/srctl /usr/local/bin/
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/echo-backend"]

# Default target: Kong 3.9 with the plugin (the same settings as
# kong/kong.conf). Kong starts the executable as an embedded go-pdk plugin
# server; the executable's base name is the plugin name and names its socket
# <kong-prefix>/service-registry.socket. Kong 3.9 does not pass -kong-prefix
# itself, so the start command does; /usr/local/kong is this image's prefix.
# Changing KONG_PREFIX means changing the start command and the socket too.
FROM kong:${KONG_VERSION} AS kong
COPY --from=build /out/service-registry /usr/local/bin/service-registry
ENV KONG_PLUGINS=bundled,service-registry \
    KONG_PLUGINSERVER_NAMES=service-registry \
    KONG_PLUGINSERVER_SERVICE_REGISTRY_START_CMD="/usr/local/bin/service-registry -kong-prefix /usr/local/kong" \
    KONG_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD="/usr/local/bin/service-registry -dump" \
    KONG_PLUGINSERVER_SERVICE_REGISTRY_SOCKET=/usr/local/kong/service-registry.socket
