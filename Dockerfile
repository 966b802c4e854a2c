# One image for every gengate process: the API, the workers and Flower (docker-compose.yml picks the
# command, e.g. `docker run gengate worker -Q video`).
FROM python:3.11-slim

# FFmpeg (and ffprobe) for media jobs: the media workers run it, the API probes with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GENGATE_DATA_DIR=/data

WORKDIR /app
# The dependencies first, in a layer of their own that only a pyproject.toml change rebuilds.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY . .
# The server (the `server` extra), no test extras.
RUN pip install ".[server]" && rm -rf build *.egg-info

# Not root. /data (private state, local storage of outputs and uploads) belongs to this user, and a
# new named volume mounted there takes over that ownership.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin gengate \
    && mkdir -p /data \
    && chown gengate:gengate /data
USER gengate
VOLUME ["/data"]

EXPOSE 8000
ENTRYPOINT ["gengate"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
