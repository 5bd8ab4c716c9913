"""Who may use the studio: every HTTP request and websocket handshake is checked before viser
sees it.

A browser lets any web page open a websocket to any address, the studio's included, and sends
the page's own ``Origin`` with the handshake. Without a check, a page from anywhere would get
the studio's whole state and could press its buttons. The rules (SECURITY.md):

- ``Host`` must name this machine's loopback (``localhost``, ``127.x.x.x``, ``::1``) when the
  studio is bound to loopback: a DNS-rebinding page (``evil.example`` resolving to 127.0.0.1)
  sends its own name and is refused.
- ``Origin``, when present, must be the studio's own (same scheme-less host and port as
  ``Host``): a page served from another origin, another port on 127.0.0.1 included, is refused.
  Browsers always send it on websocket handshakes; only non-browser clients omit it.
- With a token (required whenever the studio is bound to anything but loopback), every request
  must carry it: ``?token=...`` in the URL, or the cookie the first such request sets
  (``HttpOnly; SameSite=Strict``, so other sites' pages never send it).

Refusals are ``403 Forbidden`` with one line of text, before any state is sent. The check wraps
the ``process_request`` hook that viser 1.1.1 passes to ``websockets.asyncio.server.serve``;
:func:`guarded_viser_server` installs it while the server starts and fails closed (the server
is stopped, RuntimeError) if it could not, e.g. after a viser upgrade changed how it serves.

Examples:
    >>> policy = AccessPolicy.for_host("127.0.0.1")
    >>> policy.check("/", {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"}).allowed
    True
    >>> policy.check("/", {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8899"}).reason
    'foreign origin http://127.0.0.1:8899'
"""

from __future__ import annotations

import contextlib
import hmac
import http
import inspect
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

TOKEN_PARAM = "token"
COOKIE_PREFIX = "lrm-studio-token-"  # + port: studios on other ports of the same host keep theirs


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and literal loopback addresses (127.0.0.0/8,
    ::1, with or without brackets); False for everything else, 0.0.0.0 and names included."""
    h = host.strip().lower().strip("[]")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, str | None]:
    """``host[:port]`` (IPv6 in brackets) -> (host, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, (rest[1:] if rest.startswith(":") else None)
    host, sep, port = value.rpartition(":")
    return (host, port) if sep and port.isdigit() else (value, None)


def _single(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value, None when absent; ValueError when it is given more than once."""
    get_all = getattr(headers, "get_all", None)  # websockets.datastructures.Headers
    values = get_all(name) if get_all is not None else ([headers[name]] if name in headers else [])
    if len(values) > 1:
        raise ValueError(f"{name} header given {len(values)} times")
    return values[0] if values else None


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: allowed or not (with the reason, for the log), and a
    ``Set-Cookie`` value to add to the response (the token, after it came in the URL)."""

    allowed: bool
    reason: str = ""
    set_cookie: str | None = None


@dataclass(frozen=True)
class AccessPolicy:
    """loopback_only: the server is bound to loopback, so Host must name loopback.
    token: the secret every request must carry, or None."""

    loopback_only: bool
    token: str | None = None

    @staticmethod
    def for_host(host: str, token: str | None = None) -> AccessPolicy:
        """The policy for a server bound to ``host``: a token is required off loopback (a fresh
        random one unless ``token`` is given)."""
        loopback = is_loopback_host(host)
        if token is None and not loopback:
            token = secrets.token_urlsafe(24)
        return AccessPolicy(loopback_only=loopback, token=token or None)

    def check(self, path: str, headers: Mapping[str, str]) -> Decision:
        """Decide on one request: ``path`` is the request target (with its query),
        ``headers`` its HTTP headers (case-insensitive lookup by the caller's mapping; a header
        given twice is refused)."""
        try:
            host, origin = _single(headers, "Host"), _single(headers, "Origin")
        except ValueError as e:
            return Decision(False, str(e))
        if not host:
            return Decision(False, "no Host header")
        hostname, port = _split_host(host)
        if self.loopback_only and not is_loopback_host(hostname):
            return Decision(False, f"Host {host!r} is not this machine's loopback")
        if origin is not None:
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.strip().lower():
                return Decision(False, f"foreign origin {origin}")
        if self.token is None:
            return Decision(True)
        cookie_name = COOKIE_PREFIX + (port or "80")
        given = parse_qs(urlsplit(path).query).get(TOKEN_PARAM, [None])[0]
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            cookie = f"{cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            return Decision(True, set_cookie=cookie)
        jar = SimpleCookie()
        try:
            jar.load(headers.get("Cookie", ""))
        except CookieError:
            pass
        morsel = jar.get(cookie_name)
        if morsel is not None and hmac.compare_digest(morsel.value.encode(), self.token.encode()):
            return Decision(True)
        return Decision(False, "no valid token")


FORBIDDEN_TEXT = (
    "lrm-studio: forbidden. Open the studio with the exact URL that `lrm-studio` printed "
    "(other web pages may not use it).\n"
)


def guard_process_request(policy: AccessPolicy, inner: Callable | None) -> Callable:
    """A ``process_request`` for ``websockets.asyncio.server.serve`` that applies ``policy``
    first and then calls ``inner`` (viser's HTTP handler; None for websocket-only servers)."""

    async def process_request(connection, request):
        decision = policy.check(request.path, request.headers)
        if not decision.allowed:
            log.warning(
                "refused a %s from %s: %s",
                "websocket" if request.headers.get("Upgrade", "").lower() == "websocket" else "request",
                getattr(connection, "remote_address", "?"),
                decision.reason,
            )
            return connection.respond(http.HTTPStatus.FORBIDDEN, FORBIDDEN_TEXT)
        response = inner(connection, request) if inner is not None else None
        if inspect.isawaitable(response):
            response = await response
        if response is not None and decision.set_cookie is not None:
            response.headers["Set-Cookie"] = decision.set_cookie
        return response

    return process_request


_SERVE_LOCK = threading.Lock()  # one guarded server start at a time in this process


@contextlib.contextmanager
def guarded_viser_server(policy: AccessPolicy) -> Iterator[threading.Event]:
    """While the block constructs a ``viser.ViserServer``, the websocket server it starts gets
    ``policy`` in front of its request handler. Yields an Event that is set once the guard went
    in; the caller must check it (see :func:`start_guarded_viser`).

    viser binds the port from its own thread during ``ViserServer.__init__`` (which waits until
    it is bound), through ``websockets.asyncio.server.serve``; that function is replaced for the
    duration of the block only, and only for calls from viser's infra module."""
    import websockets.asyncio.server as ws_server

    original = ws_server.serve
    installed = threading.Event()

    def serve(handler, *args, process_request=None, **kwargs):
        if getattr(handler, "__module__", "") == "viser.infra._infra":
            process_request = guard_process_request(policy, process_request)
            installed.set()
        return original(handler, *args, process_request=process_request, **kwargs)

    with _SERVE_LOCK:
        ws_server.serve = serve  # type: ignore[assignment]
        try:
            yield installed
        finally:
            ws_server.serve = original  # type: ignore[assignment]


def start_guarded_viser(host: str, port: int, policy: AccessPolicy):
    """A ``viser.ViserServer`` on ``host:port`` (the next free port when taken) whose every
    request passes ``policy``. Raises RuntimeError (and stops the server) when the guard could
    not be installed."""
    import viser

    with guarded_viser_server(policy) as installed:
        server = viser.ViserServer(host=host, port=port, verbose=False)
    if not installed.is_set():
        server.stop()
        raise RuntimeError(
            "could not install the studio's origin check into viser's web server "
            f"(viser {viser.__version__}); refusing to serve without it"
        )
    return server


def network_addresses() -> list[str]:
    """This machine's non-loopback IP addresses (for the URLs printed when the studio is bound
    to all interfaces): the host name's addresses and the default route's source address
    (found by connecting a UDP socket, which sends nothing)."""
    import socket

    found: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    for family, probe in ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9))):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(probe)
                found.add(str(s.getsockname()[0]))
        except OSError:
            pass
    out = []
    for a in found:
        try:
            ip = ipaddress.ip_address(a.split("%")[0])
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            out.append(str(ip))
    return sorted(out, key=lambda a: (":" in a, a))
