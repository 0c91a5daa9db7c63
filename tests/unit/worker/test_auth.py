"""The admin-token gate of the worker's and dashboard's pages, on a real aiohttp app (no worker)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from stream_app.errors import ConfigurationError
from stream_app.worker.auth import admin_headers, check_listen_address, install_admin_auth, is_loopback

TOKEN = SecretStr("t" * 40)


def app_with_pages(token: SecretStr | None) -> web.Application:
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    for path in ("/health", "/metrics", "/stats", "/report", "/dashboard", "/prices/missing"):
        app.router.add_get(path, page)
    app.router.add_post("/reprice", page)
    install_admin_auth(app, token)
    return app


async def statuses(token: SecretStr | None, requests: list[tuple[str, str, dict[str, str], bytes]]) -> list[int]:
    async with TestClient(TestServer(app_with_pages(token))) as client:
        return [
            (await client.request(method, path, headers=headers, data=body)).status
            for method, path, headers, body in requests
        ]


def test_health_and_metrics_are_open_everything_else_needs_the_token() -> None:
    good = admin_headers(TOKEN)
    wrong = {"Authorization": "Bearer " + "t" * 39 + "u"}
    answers = asyncio.run(statuses(TOKEN, [
        ("GET", "/health", {}, b""), ("GET", "/metrics", {}, b""),
        ("GET", "/stats", {}, b""), ("GET", "/report", wrong, b""), ("GET", "/dashboard", {}, b""),
        ("GET", "/prices/missing", {"Authorization": TOKEN.get_secret_value()}, b""),
        ("GET", "/nowhere", {}, b""),
        ("GET", "/stats", good, b""), ("GET", "/report", good, b""), ("GET", "/dashboard", good, b""),
    ]))

    assert answers == [200, 200, 401, 401, 401, 401, 401, 200, 200, 200]


def test_state_changes_accept_only_json_so_a_cross_site_form_cannot_reprice() -> None:
    json_type = {"Content-Type": "application/json"}
    for token, auth in ((TOKEN, admin_headers(TOKEN)), (None, {})):
        answers = asyncio.run(statuses(token, [
            ("POST", "/reprice", {**auth, "Content-Type": "text/plain"}, b'{"dry_run": false}'),
            ("POST", "/reprice", {**auth, "Content-Type": "application/x-www-form-urlencoded"}, b"a=1"),
            ("POST", "/reprice", {**auth, "Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
            ("POST", "/reprice", auth, b"{}"),
            ("POST", "/reprice", {**auth, **json_type}, b"{}"),
        ]))
        assert answers == [415, 415, 415, 415, 200]
    assert asyncio.run(statuses(TOKEN, [("POST", "/reprice", json_type, b"{}")])) == [401]


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "worker.internal"])
def test_listening_beyond_loopback_needs_the_token(host: str) -> None:
    with pytest.raises(ConfigurationError, match="USAGE_ADMIN_TOKEN") as refused:
        check_listen_address(host, None, "USAGE_WORKER_WEB_HOST")
    assert "USAGE_WORKER_WEB_HOST" in str(refused.value)
    check_listen_address(host, TOKEN, "USAGE_WORKER_WEB_HOST")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_listen_address(host, None, "USAGE_WORKER_WEB_HOST")


def test_a_short_admin_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_app.settings import load_settings

    monkeypatch.setenv("USAGE_ADMIN_TOKEN", "hunter2-short")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert "USAGE_ADMIN_TOKEN" in str(refused.value) and "hunter2" not in str(refused.value)
