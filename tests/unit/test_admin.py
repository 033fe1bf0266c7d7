"""/admin: basic credentials from the settings, or switched off; in-process, no server."""

import base64
import logging

import pytest

from tests.unit.test_web import make_runtime
from tests.wsgi import call
from tracker.config import Settings
from tracker.errors import ConfigurationError
from tracker.web import create_app

USER, PASSWORD = "ops", "s3cret pass: with colon"


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def make_app(settings, fake_redis, sqlite_url):
    def make(**changes):
        app = create_app(make_runtime(settings.replace(**changes), fake_redis, sqlite_url))
        app.route("/admin/echo", ["GET", "POST"], lambda: "admin only")  # another engineer's admin route
        return app
    return make


def test_without_credentials_configured_admin_is_switched_off_and_says_so(make_app, caplog):
    with caplog.at_level(logging.INFO, logger="tracker.web.admin"):
        app = make_app()
    assert "/admin (the Dramatiq dashboard) is switched off" in caplog.text
    for path in ("/admin", "/admin/", "/admin/dramatiq/", "/admin/dramatiq/queues/tracker/failed", "/admin/echo",
                 "//admin/echo"):
        response = call(app, "GET", path, headers=basic(USER, PASSWORD))
        assert response.status == 404, path
        assert response.json()["error"] == "Not found"
        assert response.header("Content-Type") == "application/json"


@pytest.mark.parametrize("headers", [
    {},
    basic(USER, "wrong"),
    basic("someone", PASSWORD),
    basic(USER, PASSWORD + "x"),
    basic(USER, ""),
    {"Authorization": "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()},
    {"Authorization": "Basic not-base64!"},
    {"Authorization": "Basic"},
])
def test_wrong_or_missing_credentials_are_refused_everywhere_under_admin(make_app, headers):
    app = make_app(admin_user=USER, admin_password=PASSWORD)
    for method, path in (("GET", "/admin/echo"), ("POST", "/admin/echo"), ("GET", "/admin/dramatiq/"),
                         ("POST", "/admin/dramatiq/requeue-message"), ("GET", "/admin/no-such-page")):
        response = call(app, method, path, headers=headers)
        assert response.status == 401, (method, path)
        assert response.header("WWW-Authenticate") == 'Basic realm="tracker admin", charset="UTF-8"'
        assert response.json()["error"] == "Authentication required"


def test_the_right_credentials_pass(make_app):
    app = make_app(admin_user=USER, admin_password=PASSWORD)
    response = call(app, "GET", "/admin/echo", headers=basic(USER, PASSWORD))
    assert response.status == 200 and response.body == b"admin only"
    assert call(app, "GET", "/admin/no-such-page", headers=basic(USER, PASSWORD)).status == 404
    redirect = call(app, "GET", "/admin/dramatiq", headers=basic(USER, PASSWORD))
    assert redirect.status in (302, 303) and redirect.header("Location").endswith("/admin/dramatiq/")


def test_the_public_routes_need_no_credentials(make_app):
    app = make_app(admin_user=USER, admin_password=PASSWORD)
    assert call(app, "GET", "/v1/impressions?ad_id=5").status == 200
    assert call(app, "GET", "/administrator").status == 404  # not under /admin: an ordinary 404


def test_credentials_come_in_pairs():
    with pytest.raises(ConfigurationError, match="both"):
        Settings(admin_user="ops")
    with pytest.raises(ConfigurationError, match="both"):
        Settings.from_env({"TRACKER_ADMIN_PASSWORD": "x"})
    with pytest.raises(ConfigurationError, match="':'"):
        Settings(admin_user="a:b", admin_password="x")
    assert Settings.from_env({"TRACKER_ADMIN_USER": "ops", "TRACKER_ADMIN_PASSWORD": "pw"}).admin_user == "ops"
