# The tracker's one image: `tracker serve`, `dramatiq tracker.tasks`, `tracker init-db`, `tracker status`.
#
#   docker build -t tracker .
#
# Two stages: the first installs the Pipfile's pinned dependencies and the project itself (not
# editable) into a virtualenv; the second copies only that virtualenv onto a fresh slim Python,
# so no pip cache, wheel or build tool ends up in the image. The app runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tracker
COPY Pipfile pyproject.toml README.md ./
COPY scripts/pipfile.py scripts/
COPY sql/ sql/
COPY tracker/ tracker/
# pipfile.py prints the Pipfile's [packages] as pip requirements; --no-editable installs this
# project as a regular package (its files copied into the virtualenv, not linked to /src).
RUN python scripts/pipfile.py --no-editable > /tmp/requirements.txt \
 && /opt/tracker/bin/pip install -r /tmp/requirements.txt \
 && /opt/tracker/bin/pip check

FROM python:3.11-slim
ENV PATH=/opt/tracker/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    TRACKER_HOST=0.0.0.0 TRACKER_PORT=8080 TRACKER_DATA_DIR=/var/lib/tracker
RUN groupadd --system --gid 10001 tracker \
 && useradd --system --uid 10001 --gid tracker --home-dir /var/lib/tracker --create-home --shell /usr/sbin/nologin tracker
COPY --from=build /opt/tracker /opt/tracker
USER tracker:tracker
WORKDIR /var/lib/tracker
EXPOSE 8080
CMD ["tracker", "serve", "--processes", "2"]
