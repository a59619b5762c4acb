# The master-side sidecar: mounts one slave's files and devices and serves the spawn bridge under
# /splitbrain, which test containers bind-mount (see compose/docker-compose.yml).
# Build context: .build/image, made by scripts/build-images.sh from the compiled project.
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
# fuse3: libfuse3 (our FUSE binding, dist/native/, links it) and fusermount3.
# util-linux: mount --bind for the sidecar's path mappings (essential in Debian, listed for clarity).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fuse3 util-linux >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json /opt/splitbrain/
COPY node_modules /opt/splitbrain/node_modules
COPY dist /opt/splitbrain/dist
RUN ln -s /opt/splitbrain/dist/cli/main.js /usr/local/bin/splitbrain
# The flags a mount is served with (cli/node-flags.ts): the sidecar serves the slave's files.
ENTRYPOINT ["node", "--initial-old-space-size=64", "--interrupt-budget=16896", "/opt/splitbrain/dist/cli/main.js"]
CMD ["sidecar", "--dir", "/splitbrain"]
HEALTHCHECK --interval=1s --timeout=5s --start-period=120s --retries=3 CMD ["splitbrain", "health", "--dir", "/splitbrain"]
