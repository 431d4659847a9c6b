# RoomBridge service image. One image for every role: serve (default), worker, scheduler, migrate.
#   docker build -t roombridge .
#   docker run -e DATABASE_URL=... -e REDIS_URL=... -e PUBLIC_BASE_URL=... -e ADMIN_TOKEN=... -e SECRET_KEY=... \
#              -p 8000:8000 roombridge                       # HTTP service
#   docker run ... roombridge worker                         # jobs

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY simulators ./simulators
COPY migrations ./migrations
RUN python -m venv /opt/roombridge \
 && /opt/roombridge/bin/pip install --upgrade pip \
 && /opt/roombridge/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/roombridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/roombridge.db
RUN useradd --system --uid 10001 --home-dir /data --create-home roombridge
COPY --from=build /opt/roombridge /opt/roombridge
USER roombridge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)" || exit 1
ENTRYPOINT ["roombridge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
