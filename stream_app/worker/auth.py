"""Who may use the worker's and the dashboard's HTTP pages (SPEC.md §5).

`/health` and `/metrics` stay open: orchestrators and Prometheus scrape them and they hold
no tenant's figures. Every other page (`/report`, `/stats`, `/dashboard` and its data,
`/prices/*`, `POST /reprice`) needs `Authorization: Bearer $USAGE_ADMIN_TOKEN` when the
token is set, and a process refuses to listen beyond loopback without one.

State-changing requests must be `application/json`: a web page in the operator's browser
can send a cross-site form POST (`text/plain`, `application/x-www-form-urlencoded`,
`multipart/form-data`) without any preflight, but not a JSON one, so this alone stops a
malicious page from starting a reprice even where no token is configured.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from stream_app.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import SecretStr

OPEN_PATHS = frozenset({"/health", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_MEDIA_TYPE = "application/json"
TOKEN_SETTING = "USAGE_ADMIN_TOKEN"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_matches(presented: str | None, expected: SecretStr) -> bool:
    """Whether an `Authorization` header carries the token, compared in constant time.

    `hmac.compare_digest` takes as long for a near miss as for a far one, so response
    times do not reveal how many leading characters of a guess were right.
    """
    if not presented:
        return False
    scheme, _, credential = presented.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode(), expected.get_secret_value().encode())


def refusal(request_path: str, method: str, content_type: str, authorization: str | None, token: SecretStr | None) -> web.Response | None:
    """The answer that refuses this request, or None to let it through. Pure: decided from the request's parts."""
    if request_path in OPEN_PATHS and method in SAFE_METHODS:
        return None
    if token is not None and not token_matches(authorization, token):
        return web.json_response(
            {"error": f"this page needs `Authorization: Bearer <{TOKEN_SETTING}>`"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="usage-pipeline"'},
        )
    if method not in SAFE_METHODS and content_type != JSON_MEDIA_TYPE:
        return web.json_response(
            {"error": f"send the body as {JSON_MEDIA_TYPE} (got {content_type[:60] or 'no content type'!r})"},
            status=415,
        )
    return None


def admin_middleware(token: SecretStr | None) -> Any:
    """An aiohttp middleware enforcing the rules of this module's docstring."""

    @web.middleware
    async def require_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = refusal(
            request.path, request.method, request.content_type, request.headers.get("Authorization"), token
        )
        if refused is not None:
            return refused
        return await handler(request)

    return require_admin


def install_admin_auth(web_app: web.Application, token: SecretStr | None) -> None:
    """Put the check in front of every page of an aiohttp application (before it starts)."""
    web_app.middlewares.append(admin_middleware(token))


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port on this machine (0.0.0.0 and '' do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def check_listen_address(host: str, token: SecretStr | None, host_setting: str) -> None:
    """Refuse to serve tenants' figures beyond loopback without an admin token."""
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"{host_setting}={host} would let other machines read every tenant's totals and reprice "
            f"history: set {TOKEN_SETTING} (a random string of 32+ characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or listen on 127.0.0.1"
        )


def admin_headers(token: SecretStr | None) -> dict[str, str]:
    """The header a client of those pages sends: empty when no token is configured."""
    if token is None:
        return {}
    return {"Authorization": f"Bearer {token.get_secret_value()}"}
