# The example test image as many real ones are: its tests run as an ordinary user (uid and gid
# 1000), not root. Nothing else changes; splitbrain run and compose run it unmodified, and the
# slave's files and commands are then used with uid 1000's rights (docs/deployment.md).
ARG TAG=local
FROM splitbrain/example-tests:${TAG}
RUN useradd --uid 1000 --user-group --create-home tester
USER 1000:1000
