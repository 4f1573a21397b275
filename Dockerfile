# syntax=docker/dockerfile:1
# The operator image: `docker build -t claw-operator .`, then `docker run claw-operator run`.
# Runs as uid 10001 with a read-only root filesystem (mount an emptyDir at /tmp).

# The base is pinned by version tag; bump it on purpose, never by accident.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# Build stage: the wheel, installed without extras into a virtualenv, so build tools,
# pip caches, the emulators and every dev dependency stay out of the final image. The
# emulators ship in the wheel for `claw-operator dev`; the operator never needs them, so
# they are removed. Bytecode is compiled now: the running container cannot write it.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/claw_operator-*.whl \
 && rm -rf /opt/venv/lib/python3.11/site-packages/claw_emulators \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="claw-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs OpenClaw chatbot instances on Railway" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 claw && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin claw
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CLAW_METRICS_PORT=9090
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["claw-operator"]
CMD ["run"]
