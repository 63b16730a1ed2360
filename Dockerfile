# GreenGrader's one image: the bridge, CAS service, beat, workers, Flower and the metrics
# exporter all run from it with different commands (see deploy/docker-compose.yml).
#
#   docker build -t greengrader:latest .
#
# PYTHON_IMAGE defaults to the official Debian-based Python 3.11 image; any image with
# python3.11 and its venv module works (for example a mirror in a private registry:
# --build-arg PYTHON_IMAGE=registry.example.edu/library/python:3.11-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md celeryconfig.py ./
COPY greengrader ./greengrader
RUN python3 -m venv /opt/greengrader \
 && /opt/greengrader/bin/pip install --upgrade pip \
 && /opt/greengrader/bin/pip install '.[k8s]'

FROM ${PYTHON_IMAGE}
# Grading talks to a Docker daemon through its API (docker SDK): no docker CLI needed.
RUN groupadd --system --gid 10001 greengrader \
 && useradd --system --uid 10001 --gid greengrader --home-dir /var/lib/greengrader \
      --create-home --shell /usr/sbin/nologin greengrader \
 && install -d -o greengrader -g greengrader /var/lib/greengrader/beat
COPY --from=build /opt/greengrader /opt/greengrader
ENV PATH=/opt/greengrader/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GREENGRADER_HOME=/var/lib/greengrader
USER greengrader:greengrader
WORKDIR /var/lib/greengrader
# Each service overrides the command; `greengrader health` is the Nagios-style probe.
CMD ["greengrader", "--help"]
