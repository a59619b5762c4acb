# An example test image that knows nothing of splitbrain: Debian, python3, pytest and pyserial, and tests
# that expect a lab slave's files under /slave, its board console at /slave/dev/ttyBOARD and its
# commands on PATH. compose/docker-compose.yml and `splitbrain run` give it all three.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-pytest python3-serial >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY tests /tests
WORKDIR /tests
CMD ["python3", "-m", "pytest", "-v", "-p", "no:cacheprovider", "/tests"]
