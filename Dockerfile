# The stream worker (and the rest of the `usage-pipeline` CLI) as a container image.
#
#   docker build -t usage-pipeline .
#   docker run --rm usage-pipeline --help
#
# docker-compose.yml builds this for its `worker` service.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src

# Dependencies first, in their own layer, so that editing the code does not download
# them again (the `stream` extra includes the ~180 MB embedded ClickHouse wheel). They are
# read from pyproject.toml, the single list of them.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
deps = p['dependencies'] + p['optional-dependencies']['stream']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-cache-dir', *deps])"

# The project itself, with the stream worker's extra (already satisfied above, so this
# only builds and installs the package), then drop the build tree.
COPY . .
RUN pip install --no-cache-dir '.[stream]' \
    && usage-pipeline --help > /dev/null \
    && rm -rf /src

# Run as an unprivileged user; /data is its only writable state (USAGE_PIPELINE_HOME).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app /data \
    && chown app:app /app /data

ENV USAGE_PIPELINE_HOME=/data
WORKDIR /app
USER app

# The worker's health/metrics endpoint (USAGE_WORKER_WEB_PORT).
EXPOSE 6066

ENTRYPOINT ["usage-pipeline"]
CMD ["worker"]
