# PostgreSQL 15 on the debootstrapped Debian base: listens on 0.0.0.0:5432,
# trust auth for everyone (a test image; never expose it), user postgres,
# databases postgres and mcpstream.
ARG BASE=local/debian:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
