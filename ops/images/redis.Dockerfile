# Redis (Debian bookworm's 7.0) on the debootstrapped base: listens on
# 0.0.0.0:6379 in the foreground, no persistence, no protected mode.
ARG BASE=local/debian:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
