"""The routes `add_pages` registers, over plain HTTP (no browser needed)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from journeys.server.web import static_dir
from tests.browser.demo_api import Demo, ServerThread


def get(server: ServerThread, path: str) -> http.client.HTTPResponse:
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize(
    ("path", "location"), [("/", "/ui/"), ("/ui", "/ui/"), ("/ui?rule=X", "/ui/?rule=X")]
)
def test_redirects_to_the_dashboard(server: ServerThread, path: str, location: str) -> None:
    response = get(server, path)
    assert response.status == 302
    assert response.getheader("Location") == location


@pytest.mark.parametrize("path", ["/ui/", "/ui/journey", "/ui/journey?customer_id=cus_x"])
def test_pages_are_static_html_with_a_strict_policy(server: ServerThread, path: str) -> None:
    response = get(server, path)
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/html")
    policy = response.getheader("Content-Security-Policy", "")
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.getheader("Referrer-Policy") == "no-referrer"


def test_pages_embed_no_data(demo: Demo) -> None:
    html = "".join(p.read_text() for p in static_dir().glob("*.html"))
    for flag in demo.flags():
        assert flag["message"] not in html
        assert flag["customer_id"] not in html


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.css", "text/css; charset=utf-8"),
        ("common.js", "text/javascript; charset=utf-8"),
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("journey.js", "text/javascript; charset=utf-8"),
        ("actions.js", "text/javascript; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_assets(server: ServerThread, name: str, content_type: str) -> None:
    assert (static_dir() / name).is_file()
    response = get(server, f"/ui/static/{name}")
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith(content_type)


def test_no_external_resources() -> None:
    for path in static_dir().iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path.name
        assert "https://" not in text, path.name
        assert "//cdn" not in text, path.name


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/../pages.py",
        "/ui/static/%2e%2e/pages.py",
        "/ui/static/index.html",
        "/ui/static/nope.js",
    ],
)
def test_nothing_else_is_served_from_static(server: ServerThread, path: str) -> None:
    assert get(server, path).status == 404
