# A simulated slave for trying splitbrain on one machine: its own hostname (give it one with
# --hostname), root filesystem, NATS server and a board console (/dev/ttyBOARD), with the agent
# serving all of it. A real lab slave runs compose/slave.yml or the agent natively instead.
ARG TAG=local
FROM splitbrain/agent:${TAG}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server python3 hostname >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY board.py /usr/local/lib/board.py
COPY slave-entrypoint.sh /usr/local/bin/slave-entrypoint
RUN mkdir -p /var/log/board && printf 'boot ok\nsensor 21.5C\n' > /var/log/board/console.log
# What the example test image lacks, for --bridge-missing and --python-fallback: a lab tool on
# the slave's PATH, and a pure-Python module in the slave's site-packages.
RUN printf '#!/bin/sh\necho "labctl on $(uname -n)"\n' > /usr/local/bin/labctl && chmod 755 /usr/local/bin/labctl \
 && site=$(python3 -c 'import site; print(site.getsitepackages()[0])') && mkdir -p "$site" \
 && printf 'GREETING = "labtools from the slave"\n' > "$site/labtools.py"
EXPOSE 4222
ENTRYPOINT ["/usr/local/bin/slave-entrypoint"]
