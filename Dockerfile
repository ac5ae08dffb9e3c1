# GP Photo Bot. Mirrors the tested install (dev.sh setup): the same Python, the same pinned dependencies.
# Build: docker build -t gp-photo-bot .   Run: see docs/operator.md (a /data volume, an env file).
FROM python:3.11-slim

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin photobot \
    && mkdir -p /data && chown photobot /data && chmod 0700 /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install --no-cache-dir --disable-pip-version-check .

USER photobot
ENV PHOTOBOT_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["photobot"]
CMD ["run"]
