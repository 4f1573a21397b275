# syntax=docker/dockerfile:1
# The operator image: `docker build -t claw-operator .`, then `docker run claw-operator run`.

# Build stage: a wheel-installed virtualenv, so build tools (setuptools, pip caches) stay out
# of the final image.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="claw-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs OpenClaw chatbot instances on Railway" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 claw && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin claw
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["claw-operator"]
CMD ["run"]
