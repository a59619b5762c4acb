# A NATS server from Debian's package, for machines that cannot pull the official `nats` image
# (compose/slave.yml uses NATS_IMAGE, default nats:2.10). Same entrypoint and defaults.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 4222
ENTRYPOINT ["nats-server"]
CMD ["--addr", "0.0.0.0", "--port", "4222"]
