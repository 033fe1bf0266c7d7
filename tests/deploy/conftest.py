"""Fixtures of the deployment checks: the compose file as `docker-compose config` resolves it,
and the virtualenv the Dockerfile builds, replayed on this machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import service_missing
from tests.deploy.image import ROOT, replay_build_stage

#: Values standing for the secrets of .env in these checks.
TEST_SECRETS = {"REDIS_PASSWORD": "redis-test-secret-1", "DB_PASSWORD": "db-test-secret-2"}


def docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    """Debian's docker-compose (1.29) on the repository's compose file; needs no Docker engine."""
    binary = shutil.which("docker-compose")
    if binary is None:
        service_missing("docker-compose", FileNotFoundError("./dev test installs it (scripts/services.sh)"))
    return subprocess.run([binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           "--env-file", str(env_file), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})


def example_env(tmp_path: Path, **values: str) -> Path:
    """.env.example with `values` filled in."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if name in values else line)
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def compose(tmp_path_factory) -> dict:
    """The compose file as `docker-compose config` resolves it with the secrets filled in."""
    env_file = example_env(tmp_path_factory.mktemp("compose"), **TEST_SECRETS)
    done = docker_compose("config", env_file=env_file)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="session")
def raw_compose() -> dict:
    """The compose file as written (interpolations unresolved)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """The Dockerfile's build stage replayed: the virtualenv the image's containers run from."""
    return replay_build_stage(tmp_path_factory.mktemp("image"))
