# Dockerfile — mxguard as a container (the sidecar: docker-compose.yml).
# Debian 12 packages only; multi-stage: build from this repository, then a
# slim runtime image with the shared libraries and data it needs.
#
#   docker build -t mxguard .
#   docker run -d -p 127.0.0.1:2525:25 -v mxguard-state:/var/lib/mxguard mxguard
#
# The container starts as root so that mxguard can bind port 25; it then
# drops to the user mxguard (server.user in etc/examples/sidecar.conf, the
# image's configuration) and writes only to /var/lib/mxguard (a volume).
#
# BASE (both stages): the Debian 12 base image, e.g. --build-arg
# BASE=localhost/debian:12-slim for one imported from mmdebstrap where no
# registry is reachable (scripts/container-test.sh does that).

ARG BASE=debian:12-slim

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev libssl-dev libgetdns-dev libidn2-dev libjansson-dev \
      libcurl4-openssl-dev zlib1g-dev libsqlite3-dev libconfig-dev libmicrohttpd-dev \
      libopendkim-dev libcrypt-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMXG_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --prefix /usr \
 && /out/usr/sbin/mxguard --version

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libgetdns10 libidn2-0 libjansson4 libcurl4 zlib1g libsqlite3-0 \
      libconfig9 libmicrohttpd12 libopendkim11 libpq5 \
      gpgv dns-root-data ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/mxguard --shell /usr/sbin/nologin mxguard \
 && install -d -o mxguard -g mxguard -m 0700 /var/lib/mxguard
COPY --from=build /out/usr/sbin/mxguard /usr/sbin/mxguard
COPY --from=build /out/usr/share/man/ /usr/share/man/
COPY etc/examples/sidecar.conf /etc/mxguard/mxguard.conf
RUN mxguard config check -c /etc/mxguard/mxguard.conf
VOLUME /var/lib/mxguard
EXPOSE 25 9125
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/mxguard"]
CMD ["run", "-c", "/etc/mxguard/mxguard.conf"]
