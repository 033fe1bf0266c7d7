"""docker-compose.yml, docker/redis.conf and .env.example: valid, healthy, ordered, not exposed.

`docker-compose config` (Debian's docker-compose, no engine) validates and resolves the file;
the checks below read what it resolved.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.deploy.conftest import TEST_SECRETS, docker_compose, example_env
from tests.deploy.image import ROOT

APP_SERVICES = ("init-db", "web", "worker")


def services(compose: dict) -> dict:
    return compose["services"]


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def redis_conf() -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in (ROOT / "docker" / "redis.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            conf.setdefault(name.lower(), value)
    return conf


def test_the_stack_has_its_five_services(compose):
    assert set(services(compose)) == {"redis", "mariadb", "init-db", "web", "worker"}


def test_compose_refuses_to_start_without_the_passwords(tmp_path):
    done = docker_compose("config", env_file=example_env(tmp_path))  # .env.example as shipped
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr or "DB_PASSWORD" in done.stderr


def test_env_example_holds_no_secret():
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if not line.startswith("#") and re.search("PASSWORD|SECRET|TOKEN|KEY", name):
            assert value == "", f"{name} has a value in .env.example"


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in services(compose).items():
        if not is_one_shot(service):
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_each_service_waits_for_what_its_urls_name(compose):
    # Given the hosts named by a service's REDIS_URL / DATABASE_URL / TRACKER_BROKER_URL
    for name, service in services(compose).items():
        needs = {urllib.parse.urlsplit(value).hostname for key, value in service.get("environment", {}).items()
                 if key.endswith("_URL")} & set(services(compose))
        depends = service.get("depends_on", {})
        # Then it depends on each of them being healthy
        for host in needs:
            assert depends.get(host, {}).get("condition") == "service_healthy", (name, host)
        # and on every one-shot it depends on having completed
        for other, condition in depends.items():
            wanted = "service_completed_successfully" if is_one_shot(services(compose)[other]) else "service_healthy"
            assert condition.get("condition") == wanted, (name, other)


def test_web_and_worker_start_after_the_tables_exist(compose):
    for name in ("web", "worker"):
        assert services(compose)[name]["depends_on"]["init-db"]["condition"] == "service_completed_successfully"
    assert services(compose)["init-db"]["command"] == ["tracker", "init-db"]
    mounts = services(compose)["mariadb"]["volumes"]
    assert any(m.startswith(f"{ROOT / 'sql'}:/docker-entrypoint-initdb.d") for m in mounts)
    assert (ROOT / "sql" / "schema.sql").is_file()


def test_only_web_publishes_a_port_and_the_backends_are_on_an_internal_network(compose):
    published = {name for name, service in services(compose).items() if service.get("ports")}
    assert published == {"web"}
    for name in ("redis", "mariadb"):
        networks = set(services(compose)[name]["networks"])
        assert networks and all(compose["networks"][n].get("internal") for n in networks), name


def test_web_publishes_on_localhost_unless_told_otherwise(compose):
    (port,) = services(compose)["web"]["ports"]
    assert str(port).startswith("127.0.0.1:") or port.get("host_ip") == "127.0.0.1"


REQUIRED = re.compile(r"^\$\{[A-Z_]+:\?[^}]*\}$")  # ${NAME:?message}: no default, refused when unset
OPTIONAL = re.compile(r"^\$\{[A-Z_]+:-\}$")  # ${NAME:-}: empty unless set, and empty turns the feature off


def test_secrets_come_only_from_env_and_reach_the_urls(compose, raw_compose):
    # Given the compose file as written: every password is a required variable, never a value
    for name, service in raw_compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key and key != "MARIADB_RANDOM_ROOT_PASSWORD":
                optional = key == "TRACKER_ADMIN_PASSWORD"  # /admin is off without one
                assert (OPTIONAL if optional else REQUIRED).match(str(value)), (name, key)
            if key.endswith("_URL") and "@" in str(value):
                password = re.match(r"^\w+://[^:@/]*:(\$\{[^}]*\})@", value)
                assert password and REQUIRED.match(password.group(1)), (name, key)
    # Then, resolved, the secrets of .env reach the URLs and the servers
    env = services(compose)["web"]["environment"]
    assert urllib.parse.urlsplit(env["REDIS_URL"]).password == TEST_SECRETS["REDIS_PASSWORD"]
    assert urllib.parse.urlsplit(env["DATABASE_URL"]).password == TEST_SECRETS["DB_PASSWORD"]
    assert services(compose)["mariadb"]["environment"]["MARIADB_PASSWORD"] == TEST_SECRETS["DB_PASSWORD"]
    assert "MARIADB_ROOT_PASSWORD" not in services(compose)["mariadb"]["environment"]


def test_redis_runs_the_config_file_with_aof_noeviction_and_protected_mode(compose):
    conf = redis_conf()
    assert conf["appendonly"] == "yes" and conf["appendfsync"] == "always"  # as the README promises
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf["protected-mode"] == "yes"
    assert "requirepass" not in conf  # the password comes from .env, never from the repository
    redis = services(compose)["redis"]
    (mount,) = [v for v in redis["volumes"] if v.startswith(str(ROOT / "docker" / "redis.conf"))]
    container_path = mount.split(":")[1]
    assert f"docker-entrypoint.sh redis-server {container_path}" in " ".join(redis["command"])  # not as root
    assert "requirepass" in " ".join(redis["command"]) and "$REDIS_PASSWORD" in " ".join(redis["command"])
    assert redis["environment"]["REDIS_PASSWORD"] == TEST_SECRETS["REDIS_PASSWORD"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_the_image_built_here(compose, name):
    service = services(compose)[name]
    assert service["build"]["context"] == str(ROOT) and service["image"] == "tracker:latest"


def test_web_runs_several_processes(compose):
    command = services(compose)["web"]["command"]
    assert command[:2] == ["tracker", "serve"] and int(command[command.index("--processes") + 1]) >= 2
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from the published port


def test_the_optional_features_can_be_turned_on_from_env(compose):
    """Signed clicks, the link API, rate limits and /admin reach the app services from .env."""
    for name in APP_SERVICES[1:]:
        env = services(compose)[name]["environment"]
        for variable in ("TRACKER_PUBLIC_URL", "TRACKER_CLICK_SECRET", "TRACKER_LINK_API_TOKEN", "TRACKER_RATE_LIMIT",
                         "TRACKER_IP_HASH_KEY", "TRACKER_TRUSTED_PROXIES", "TRACKER_ADMIN_USER", "TRACKER_ADMIN_PASSWORD"):
            assert variable in env, (name, variable)
        assert env["TRACKER_RATE_LIMIT"] == "0"  # an int even when .env leaves it out

