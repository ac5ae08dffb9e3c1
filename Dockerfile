# GP Photo Bot. Mirrors the tested install (dev.sh setup): the same Python, the same pinned dependencies.
# Build: docker build -t gp-photo-bot .   Run: docs/operator.md, "With Docker" (a /data volume, an env file).
# It runs as an unprivileged user (uid 10001), never root, and writes only under /data, so the container
# may run with --read-only, --cap-drop ALL and no-new-privileges.
FROM python:3.11-slim

RUN useradd --system --no-log-init --uid 10001 --home-dir /data --shell /usr/sbin/nologin photobot \
    && mkdir -p /data && chown photobot /data && chmod 0700 /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install --no-cache-dir --disable-pip-version-check .

USER photobot
# Unbuffered: `init`'s progress and every log line reach `docker logs` at once. No bytecode: the installed
# packages belong to root and stay read-only to the bot.
ENV PHOTOBOT_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/data"]
ENTRYPOINT ["photobot"]
CMD ["run"]
