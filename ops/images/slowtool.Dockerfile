# The container suite's upstream MCP server (integration/containers/slowtool):
# the static binary alone, built on the host by build.sh.
FROM scratch
COPY slowtool /slowtool
EXPOSE 8080
ENTRYPOINT ["/slowtool"]
