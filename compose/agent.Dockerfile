# The slave-side agent. Run natively (docs/deployment.md) or from compose/slave.yml, which gives
# it the host's root, PID and network namespaces so that it serves the host, not the container.
# Build context: .build/image, made by scripts/build-images.sh from the compiled project.
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
COPY package.json package-lock.json /opt/splitbrain/
COPY node_modules /opt/splitbrain/node_modules
COPY dist /opt/splitbrain/dist
RUN ln -s /opt/splitbrain/dist/cli/main.js /usr/local/bin/splitbrain
# The agent's Node flags of cli/node-flags.ts (far fewer full garbage collections while data
# streams; one V8 helper thread, for a smaller idle agent).
ENTRYPOINT ["node", "--initial-old-space-size=64", "--v8-pool-size=1", "/opt/splitbrain/dist/cli/main.js"]
CMD ["agent", "--help"]
