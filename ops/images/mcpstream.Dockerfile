# mcpstream's image for the container suite: the static binary alone
# (CGO_ENABLED=0), built on the host by build.sh, so no builder image has to
# be pulled. It runs every role, the embedded broker included.
FROM scratch
COPY mcpstream /mcpstream
ENTRYPOINT ["/mcpstream"]
