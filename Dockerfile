# GP Photo Bot. Mirrors the tested install (dev.sh test's .venv-installed): the same Python minor version,
# every dependency from requirements.lock with its hash, then the bot itself without resolving anything more.
# Build: docker build -t gp-photo-bot .   Run: docs/operator.md, "With Docker" (a /data volume, an env file).
# It runs as an unprivileged user (uid 10001), never root, and writes only under /data, so the container
# may run with --read-only, --cap-drop ALL and no-new-privileges.
#
# The base image is pinned by tag and by the digest of its multi-architecture index, so a rebuild starts
# from the same bytes; to move to a newer Python patch release, change both and rebuild.
# The web chat's page (web/) is built in a Node stage of its own: npm installs exactly web/package-lock.json
# and esbuild writes bot/web_chat/static/, which is copied into the bot's tree before the wheel is built.
# Node is needed to build the image, never in it.
FROM node:20.20.2-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs ./
COPY web/src ./src
RUN npm run build

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

RUN useradd --system --no-log-init --uid 10001 --home-dir /data --shell /usr/sbin/nologin photobot \
    && mkdir -p /data && chown photobot /data && chmod 0700 /data

WORKDIR /app
# Dependencies first (their own layer, rebuilt only when the lock changes), each checked against its hash.
COPY requirements.lock ./
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE CHANGELOG.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY --from=web /src/bot/web_chat/static ./bot/web_chat/static
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps . && photobot --version

USER photobot
# Unbuffered: `init`'s progress and every log line reach `docker logs` at once. No bytecode: the installed
# packages belong to root and stay read-only to the bot. The status server (/metrics, /healthz) listens on
# the container's loopback only, for the health check below; PHOTOBOT_STATUS_PORT=0 in the env file turns
# it off (and the container then shows as unhealthy, saying why).
ENV PHOTOBOT_DATA_DIR=/data \
    PHOTOBOT_STATUS_PORT=9464 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/data"]

# Healthy while /healthz answers 200: the last sync with the homeserver is recent and the database answers.
# `docker ps` shows it; an orchestrator may restart an unhealthy container. The start period covers start-up
# (and the wait for a homeserver that is not up yet).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, sys, urllib.request; port = os.environ.get('PHOTOBOT_STATUS_PORT', '0'); sys.exit('the status server is off (PHOTOBOT_STATUS_PORT=0)') if port == '0' else urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"

# Restarts: run the container with `--restart unless-stopped` (docs/operator.md). A configuration error
# stops the bot with a message in `docker logs` and restarting cannot fix it; the exit codes, and which of
# them are worth a restart, are listed in docs/operator.md.
ENTRYPOINT ["photobot"]
CMD ["run"]
