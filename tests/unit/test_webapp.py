"""gateway.webapp: the officer app's files at /app, with their security headers, types and compression."""
from __future__ import annotations

import gzip

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway import webapp


@pytest.fixture
def client():
    app = FastAPI()
    webapp.install(app)
    with TestClient(app) as c:
        yield c


def test_app_redirects_to_the_folder_so_relative_urls_resolve(client):
    resp = client.get("/app", follow_redirects=False)
    assert resp.status_code == 308 and resp.headers["location"] == "/app/"


def test_the_shell_carries_a_self_only_policy_and_is_revalidated(client):
    resp = client.get("/app/")
    assert resp.status_code == 200 and "<title>Hotspot Patrol</title>" in resp.text
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["cache-control"] == "no-cache" and resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path, media_type", [("app.js", "text/javascript"), ("sw.js", "text/javascript"),
                                              ("manifest.webmanifest", "application/manifest+json"),
                                              ("app.css", "text/css")])
def test_each_file_has_its_exact_type_once(client, path, media_type):
    resp = client.get(f"/app/{path}")
    assert resp.status_code == 200
    assert resp.headers.get_list("content-type")[0].startswith(media_type)
    assert len(resp.headers.get_list("content-type")) == 1


def test_files_are_gzipped_for_browsers_that_accept_it(client):
    raw = (webapp.APP_DIR / "app.js").read_bytes()
    resp = client.get("/app/app.js", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.content == raw  # decoded by the client: the same bytes
    assert int(resp.headers["content-length"]) < len(gzip.compress(raw)) + 64 < len(raw)


def test_only_the_app_folder_is_served(client):
    assert client.get("/app/%2e%2e/pyproject.toml").status_code == 404
    assert client.get("/app/nothing-here.js").status_code == 404
