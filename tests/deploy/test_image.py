"""The image: slim, non-root, dependencies from the Pipfile, and the commands compose runs exist.

The Dockerfile's build stage is replayed on this machine (tests/deploy/image.py): its virtualenv
is what the image ships, so each service's command and healthcheck is checked against the
console scripts of that virtualenv, and parsed by the installed tracker's own CLI and Dramatiq's.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.deploy.conftest import TEST_SECRETS
from tests.deploy.image import ROOT, clean_env, env_pairs, parse
from tests.wsgi import call

pytestmark = pytest.mark.slow

APP_IMAGE = "tracker:latest"
VENV = "/opt/tracker"

# Run by the image's Python: parse a command line as `tracker` or `dramatiq` would, import what
# it names, and report where the package was imported from.
PARSE = """
import importlib, json, sys
argv = json.loads(sys.argv[1])
if argv[0] == "tracker":
    from tracker.cli import build_parser
    args = build_parser().parse_args(argv[1:])
    detail = args.command
elif argv[0] == "dramatiq":
    import dramatiq.cli
    args = dramatiq.cli.make_argument_parser().parse_args(argv[1:])
    for module in [args.broker, *args.modules]:
        importlib.import_module(module)
    detail = [args.broker, args.processes, args.threads]
import tracker
print(json.dumps({"detail": detail, "tracker": tracker.__file__}))
"""


def test_the_image_is_slim_and_runs_as_an_unprivileged_user():
    build, final = parse()
    assert build.base == final.base == "python:3.11-slim"
    (user,) = final.all("USER")
    assert user.split(":")[0] not in ("root", "0")
    # The final stage takes only the virtualenv from the build stage: no compiler, cache or source
    assert [c for c in final.all("COPY")] == [f"--from={build.name} {VENV} {VENV}"]
    assert not any("apt-get" in run or "pip" in run for run in final.all("RUN"))
    assert env_pairs(" ".join(final.all("ENV")))["PATH"].startswith(f"{VENV}/bin:")


def test_dependencies_come_from_the_pipfile_and_the_project_is_not_editable():
    build, _ = parse()
    run = " ".join(build.all("RUN"))
    assert "scripts/pipfile.py --no-editable" in run and "pip install -r" in run
    assert "pip check" in run


def test_the_replayed_image_holds_the_package_itself_with_its_schema(image):
    site = image.host(VENV)
    (schema,) = site.glob("lib/python3.11/site-packages/tracker/sql/schema.sql")
    assert schema.read_text() == (ROOT / "sql" / "schema.sql").read_text()
    assert not list(site.glob("lib/python3.11/site-packages/__editable__*"))


def commands(compose: dict):
    """(service, what, argv) for every command and exec healthcheck of the app's services."""
    for name, service in compose["services"].items():
        if service.get("image") != APP_IMAGE:
            continue
        yield name, "command", service["command"]
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD":
            yield name, "healthcheck", test[1:]


def test_every_command_of_the_app_services_exists_in_the_image(compose, image, tmp_path):
    checked = []
    for name, what, argv in commands(compose):
        # Then its program is a console script (or the Python) of the image's virtualenv
        program = image.host(VENV) / "bin" / argv[0]
        assert program.exists(), f"{name} {what}: {argv[0]} is not in the image"
        if argv[0] == "python":
            continue
        # and its arguments parse, with the service's own environment, from outside the source tree
        env = clean_env(**{k: str(v) for k, v in compose["services"][name].get("environment", {}).items()})
        done = subprocess.run([str(image.host(VENV) / "bin" / "python"), "-c", PARSE, json.dumps(argv)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{name} {what} {argv}: {done.stderr[-2000:]}"
        result = json.loads(done.stdout)
        assert result["tracker"].startswith(str(image.host(VENV))), result  # the installed package
        checked.append((name, what, result["detail"]))
    assert ("web", "command", "serve") in checked and ("init-db", "command", "init-db") in checked
    assert ("worker", "command", ["tracker.tasks", 2, 8]) in checked


def test_the_web_processes_flag_is_what_serve_offers(image):
    done = subprocess.run([str(image.host(VENV) / "bin" / "tracker"), "serve", "--help"], capture_output=True,
                          text=True, timeout=60, env=clean_env())
    assert done.returncode == 0 and "--processes" in done.stdout


def test_the_web_healthcheck_asks_for_a_route_the_app_serves(compose, settings):
    from tracker.runtime import Runtime  # noqa: PLC0415
    from tracker.web import create_app  # noqa: PLC0415

    (code,) = [argv[-1] for name, what, argv in commands(compose) if (name, what) == ("web", "healthcheck")]
    path = code.split("http://127.0.0.1:8080", 1)[1].split("'", 1)[0]
    assert call(create_app(Runtime(settings)), "GET", path).status == 200


def test_the_compose_secrets_are_not_baked_into_the_image():
    text = (ROOT / "Dockerfile").read_text()
    assert not any(secret in text for secret in TEST_SECRETS) and "PASSWORD" not in text
