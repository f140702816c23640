"""HTTP access control: bearer token, Host/Origin checks (DNS-rebinding guard), safe binding."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class UnsafeBind(Exception):
    """Listening beyond this machine without a token would expose every recording."""


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


MIN_TOKEN_LENGTH = 16
"""Characters a token needs before the server listens beyond loopback: 16 random characters
from `secrets.token_urlsafe` carry about 96 bits, beyond guessing over the network."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token, or with a guessable one (raised before
    anything listens)."""
    if is_loopback(host):
        return
    if not token:
        raise UnsafeBind(
            f"refusing to listen on {host} without a token: anyone who can reach this address "
            "could read and change the speaker memory. Set SPEAKER_MEMORY_TOKEN (or --token) to "
            "a long random secret, or listen on 127.0.0.1."
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise UnsafeBind(
            f"refusing to listen on {host} with a {len(token)}-character token: it could be "
            f"guessed. Use at least {MIN_TOKEN_LENGTH} random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'."
        )


def allowed_host_names(bind_host: str, extra: Iterable[str]) -> list[str]:
    """Host header values accepted (without port: any port is accepted)."""
    names = list(LOOPBACK_NAMES)
    if bind_host not in ("0.0.0.0", "::", "") and not is_loopback(bind_host):
        names.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    names.extend(h.strip().lower() for h in extra if h.strip())
    return list(dict.fromkeys(names))


def normalise_origin(origin: str) -> str:
    """An Origin as browsers send it: lower case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


def transport_security(names: list[str], extra_origins: Iterable[str] = ()) -> (
        TransportSecuritySettings):
    """The SDK's own guard on /mcp, fed the same lists (kept on: defence in depth; AccessGuard
    is the stricter of the two on origins)."""
    hosts: list[str] = []
    origins: list[str] = [normalise_origin(o) for o in extra_origins if o.strip()]
    for name in names:
        hosts += [name, f"{name}:*"] if not _has_port(name) else [name]
        for scheme in ("http", "https"):
            origins += [f"{scheme}://{name}", f"{scheme}://{name}:*"] if not _has_port(name) \
                else [f"{scheme}://{name}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


@dataclass(frozen=True)
class PublicPaths:
    """Paths read without the token (GET and HEAD only): exact paths and path prefixes."""

    exact: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def covers(self, scope: Scope) -> bool:
        if scope.get("method") not in ("GET", "HEAD"):
            return False
        path: str = scope.get("path", "")
        # Routing matches this same string; a path with ".." is never public, whatever it is.
        return ".." not in path and (path in self.exact or path.startswith(self.prefixes))


class AccessGuard:
    """ASGI middleware in front of every HTTP route: Host, Origin, then the bearer token.

    A browser sends Origin with every cross-site request that can change something, and any
    page on this machine can make one: so an Origin is accepted only when it is this server's
    own (the Host the request was sent to) or one the settings list. Requests without an
    Origin (agents, curl) are not from a web page and go on to the token check.

    `public` paths (the review page's static files, which hold no data) are read without the
    token: the page itself asks for it and sends it with every API call."""

    def __init__(self, app: ASGIApp, *, token: str | None, host_names: list[str],
                 origins: Iterable[str] = (), tickets: Tickets | None = None,
                 public: PublicPaths | None = None) -> None:
        self.app = app
        self.token = token
        self.host_names = [n.lower() for n in host_names]
        self.origins = {normalise_origin(o) for o in origins if o.strip()}
        self.tickets = tickets
        self.public = public or PublicPaths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self._host_ok(host):
            log.warning("refused request with Host %r", host)
            await _refuse(421, f"Host {host!r} is not allowed; add it to "
                          "SPEAKER_MEMORY_ALLOWED_HOSTS if this server should answer to it.",
                          scope, receive, send)
            return
        origin = headers.get("origin")
        if origin and not self._origin_ok(origin, host):
            log.warning("refused request with Origin %r", origin)
            await _refuse(403, f"Origin {origin!r} is not allowed: only pages served by this "
                          "server may call it. Add the origin to SPEAKER_MEMORY_ALLOWED_ORIGINS "
                          "if that page should.", scope, receive, send)
            return
        if (self.token and not self.public.covers(scope)
                and not self._token_ok(headers.get("authorization", ""))):
            await _refuse(401, "missing or wrong bearer token: send 'Authorization: Bearer "
                          "<SPEAKER_MEMORY_TOKEN>'.", scope, receive, send,
                          {"www-authenticate": 'Bearer realm="speaker-memory"'})
            return
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same checks before a WebSocket upgrade is accepted. A browser cannot set an
        Authorization header on a WebSocket, and a token in the URL would end up in logs: a
        page offers a one-use ticket (POST /api/v1/live/tickets) as the subprotocol
        'ticket.<ticket>' instead. Refused upgrades get HTTP 403."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        origin = headers.get("origin")
        allowed = self._host_ok(host) and (not origin or self._origin_ok(origin, host))
        if allowed and self.token:
            ticket = next((p[len(TICKET_PREFIX):] for p in scope.get("subprotocols") or []
                           if p.startswith(TICKET_PREFIX)), None)
            allowed = self._token_ok(headers.get("authorization", "")) or (
                ticket is not None and self.tickets is not None and self.tickets.redeem(ticket))
        if not allowed:
            log.warning("refused WebSocket upgrade (Host %r, Origin %r)", host, origin)
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _host_ok(self, host: str) -> bool:
        host = host.lower()
        for name in self.host_names:
            if host == name or (not _has_port(name) and host.startswith(name + ":")
                                and host[len(name) + 1:].isdigit()):
                return True
        return False

    def _origin_ok(self, origin: str, host: str) -> bool:
        origin = normalise_origin(origin)
        if origin in self.origins:
            return True
        scheme, _, rest = origin.partition("://")
        return scheme in ("http", "https") and rest == host.lower()

    def _token_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )


def _has_port(name: str) -> bool:
    tail = name.rsplit("]", 1)[-1] if name.startswith("[") else name
    return ":" in tail


async def _refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send,
                  headers: dict[str, str] | None = None) -> None:
    response = JSONResponse({"error": message}, status_code=status, headers=headers)
    await response(scope, receive, send)


TICKET_PREFIX = "ticket."
TICKET_SECONDS = 60.0
MAX_TICKETS = 1000


class Tickets:
    """One-use, short-lived WebSocket tickets, issued to a caller that passed the bearer check
    (REST), redeemed once by the upgrade that carries one."""

    def __init__(self) -> None:
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        ticket = secrets.token_hex(32)
        now = time.monotonic()
        with self._lock:
            self._issued = {t: at for t, at in self._issued.items()
                            if now - at < TICKET_SECONDS}
            if len(self._issued) >= MAX_TICKETS:  # never an unbounded table
                oldest = min(self._issued, key=self._issued.__getitem__)
                del self._issued[oldest]
            self._issued[ticket] = now
        return ticket

    def redeem(self, ticket: str) -> bool:
        with self._lock:
            issued = self._issued.pop(ticket, None)
        return issued is not None and time.monotonic() - issued < TICKET_SECONDS
