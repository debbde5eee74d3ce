# The prediction service: gunicorn serving the artifacts baked in at /app/artifacts over HTTP on
# port 8000 and, in a companion process its master runs, over gRPC on port 8001.
#   docker build -t numpy-model-server .
#   docker run -p 127.0.0.1:8000:8000 -p 127.0.0.1:8001:8001 numpy-model-server
# Configuration by environment variables (README, "Docker and Kubernetes"); mount your own
# artifacts over /app/artifacts to serve other models without rebuilding.
# Runtime dependencies only: the pins of [project].dependencies in pyproject.toml, the one place
# versions are kept, written out as requirements.txt in a throw-away stage.
FROM python:3.11-slim AS requirements
COPY pyproject.toml /
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /requirements.txt

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Installed before the code; the layer's cache key is requirements.txt's content, so it is
# rebuilt only when a runtime pin changes, not on code, model or other pyproject.toml changes.
COPY --from=requirements /requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# A fixed, numeric, unprivileged user (Kubernetes' runAsNonRoot can only verify a number).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

# Code and models stay owned by root and read-only to the app user; the bytecode is compiled
# here because the running container cannot write it (read-only root filesystem).
COPY model/ model/
COPY service/ service/
COPY deploy/healthcheck.py deploy/healthcheck.py
RUN python -m compileall -q model service deploy
# Last, as it changes most often. No VOLUME: an anonymous volume would hide the models of a newer
# image behind old copies; mount a folder here (-v DIR:/app/artifacts:ro) to serve other models.
COPY artifacts/ artifacts/

# PORT, GRPC_PORT (0: HTTP only) and the SERVICE_* variables are read by service/config.py; gunicorn.conf.py sets the BLAS
# thread variables for the workers, the two here cover `python -m service.batch` in the image.
# Writable paths needed at run time: /tmp (metrics of all workers) and /dev/shm (worker
# heartbeats); everything else may be read-only.
ENV PORT=8000 \
    GRPC_PORT=8001 \
    SERVICE_ARTIFACTS_DIR=/app/artifacts \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1

USER 10001:10001
EXPOSE 8000 8001

# Both protocols: HTTP /v2/health/ready and gRPC ServerReady.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# One unit: gunicorn.conf.py starts `python -m service.grpc` once ready, forwards HUP to it and
# stops it gracefully on SIGTERM/SIGINT; should it die, gunicorn stops too.
CMD ["gunicorn", "-c", "service/gunicorn.conf.py", "service.app:create_app()"]

# Build metadata last so a new revision does not invalidate any layer above.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="numpy-model-server" \
      org.opencontainers.image.description="NumPy neural networks served over KServe V1/V2 REST (port 8000) and Open Inference Protocol gRPC (port 8001)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
