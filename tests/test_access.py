"""Who may use the studio (viewer/access.py): the Origin / Host / token rules on their own, and
against a running studio with a real websocket client and real HTTP requests. The browser
version (a page on another loopback port in Chromium) is in test_browser_security.py."""

from __future__ import annotations

import base64
import os
import socket
import time
import urllib.error
import urllib.request

import pytest
import viser
import websockets.exceptions
from studio_helpers import make_capture
from websockets.sync.client import connect

from studio.config import StudioConfig
from viewer.access import AccessPolicy, is_loopback_host


def test_loopback_names():
    for h in ("127.0.0.1", "localhost", "LOCALHOST", "::1", "[::1]", "127.3.2.1", "app.localhost"):
        assert is_loopback_host(h), h
    for h in (
        "0.0.0.0",
        "::",
        "192.168.1.5",
        "evil.example",
        "localhost.evil.example",
        "",
        "127.0.0.1.nip.io",
    ):
        assert not is_loopback_host(h), h


def test_policy_on_loopback():
    p = AccessPolicy.for_host("127.0.0.1")
    assert p.token is None and p.loopback_only
    ok = {"Host": "127.0.0.1:8080"}
    assert p.check("/", ok).allowed  # a navigation (no Origin)
    assert p.check("/", {**ok, "Origin": "http://127.0.0.1:8080"}).allowed
    assert p.check("/", {"Host": "localhost:8080", "Origin": "http://localhost:8080"}).allowed
    refused = [
        {**ok, "Origin": "http://127.0.0.1:8899"},  # another port: another origin
        {**ok, "Origin": "http://evil.example"},
        {**ok, "Origin": "null"},  # sandboxed iframes, file:// pages
        {**ok, "Origin": "http://localhost:8080"},  # same machine, but not the page's own origin
        {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"},  # DNS rebinding
        {"Host": "evil.example:8080"},
        {},  # no Host
    ]
    for headers in refused:
        d = p.check("/", headers)
        assert not d.allowed and d.reason, headers


def test_policy_off_loopback_needs_the_token():
    p = AccessPolicy.for_host("0.0.0.0")
    assert p.token and len(p.token) >= 24 and not p.loopback_only
    assert AccessPolicy.for_host("0.0.0.0").token != p.token  # fresh per start
    host = {"Host": "192.168.1.5:8080"}
    assert not p.check("/", host).allowed
    assert not p.check("/?token=wrong", host).allowed
    first = p.check(f"/?fixedDpr=0.5&token={p.token}", host)
    assert first.allowed and first.set_cookie is not None
    assert "HttpOnly" in first.set_cookie and "SameSite=Strict" in first.set_cookie
    cookie = first.set_cookie.split(";")[0]
    assert p.check("/", {**host, "Cookie": cookie}).allowed
    assert not p.check("/", {**host, "Cookie": cookie.replace(p.token, p.token[:-1] + "x")}).allowed
    assert not p.check("/", {**host, "Cookie": cookie.replace("8080", "8081")}).allowed  # another studio's
    # the token does not let a foreign page in
    assert not p.check(f"/?token={p.token}", {**host, "Origin": "http://evil.example"}).allowed
    assert AccessPolicy.for_host("127.0.0.1", token="given").token == "given"


@pytest.fixture
def running(tmp_path, gen):
    from viewer.app import start_studio

    make_capture(tmp_path / "ws" / "cap", 4, gen, points=50)
    r = start_studio(StudioConfig(workspace=tmp_path / "ws", port=0, demo=False))
    yield r
    r.stop()


def ws_url(running) -> str:
    return f"ws://127.0.0.1:{running.port}"


def handshake(running, **kwargs):
    return connect(ws_url(running), subprotocols=[f"viser-v{viser.__version__}"], open_timeout=20, **kwargs)


def test_websocket_with_foreign_origin_is_refused_before_any_state(running):
    handled: list[int] = []  # websocket connections that reached viser's handler (private API)
    running.server._websock_server.on_client_connect(lambda conn: handled.append(conn.client_id))
    for origin in ("http://evil.example", f"http://127.0.0.1:{running.port + 1}", "null"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            handshake(running, origin=origin)
        assert e.value.response.status_code == 403, origin
    # DNS rebinding: the attacker's name in Host (and its own origin); and a doubled Host
    rebound = raw_handshake(
        running.port, f"evil.example:{running.port}", f"http://evil.example:{running.port}"
    )
    assert rebound.startswith(b"HTTP/1.1 403"), rebound[:80]
    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        handshake(running, additional_headers={"Host": f"evil.example:{running.port}"})
    assert e.value.response.status_code == 403
    # the same raw handshake with the studio's own Host and Origin is accepted (101)
    own = raw_handshake(running.port, f"127.0.0.1:{running.port}", f"http://127.0.0.1:{running.port}")
    assert own.startswith(b"HTTP/1.1 101"), own[:80]
    # the studio's own origin gets in and receives the GUI state
    with handshake(running, origin=f"http://127.0.0.1:{running.port}") as ws:
        got = ws.recv(timeout=20)
        assert isinstance(got, bytes) and len(got) > 0
    time.sleep(0.2)
    assert len(handled) == 2  # only the two handshakes with the studio's own Host and Origin


def raw_handshake(port: int, host: str, origin: str) -> bytes:
    """A websocket handshake written by hand (to set Host freely); returns the response head."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
        f"Sec-WebSocket-Protocol: viser-v{viser.__version__}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_http_requests_check_host_and_origin(running):
    base = f"http://127.0.0.1:{running.port}/"
    with urllib.request.urlopen(base, timeout=20) as r:
        assert r.status == 200
    for headers in ({"Host": f"evil.example:{running.port}"}, {"Origin": "http://evil.example"}):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=20)
        assert e.value.code == 403 and b"forbidden" in e.value.read()


def test_token_required_off_loopback(tmp_path, gen):
    """Bound to 0.0.0.0 the studio wants the printed URL's token (then a cookie); reached through
    127.0.0.1 here, which the policy treats like any other address."""
    from viewer.app import start_studio

    make_capture(tmp_path / "ws" / "cap", 4, gen, points=0)
    r = start_studio(StudioConfig(workspace=tmp_path / "ws", host="0.0.0.0", port=0, demo=False))
    try:
        assert r.access.token and f"token={r.access.token}" in r.url
        plain = f"http://127.0.0.1:{r.port}/"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(plain, timeout=20)
        assert e.value.code == 403
        with urllib.request.urlopen(r.url, timeout=20) as resp:
            assert resp.status == 200
            cookie = resp.headers["Set-Cookie"].split(";")[0]
        with urllib.request.urlopen(
            urllib.request.Request(plain, headers={"Cookie": cookie}), timeout=20
        ) as resp:
            assert resp.status == 200
        sub = [f"viser-v{viser.__version__}"]
        with pytest.raises(websockets.exceptions.InvalidStatus):
            connect(f"ws://127.0.0.1:{r.port}", subprotocols=sub, open_timeout=20)
        with connect(
            f"ws://127.0.0.1:{r.port}",
            subprotocols=sub,
            open_timeout=20,
            additional_headers={"Cookie": cookie},
        ) as ws:
            assert len(ws.recv(timeout=20)) > 0
    finally:
        r.stop()


def test_guard_fails_closed_when_viser_serves_differently(monkeypatch):
    """If viser stopped starting its server through websockets' serve (a viser upgrade), the
    studio must refuse to run unguarded."""
    from viewer import access

    monkeypatch.setattr(access, "guarded_viser_server", _no_guard)
    with pytest.raises(RuntimeError, match="origin check"):
        access.start_guarded_viser("127.0.0.1", 0, AccessPolicy.for_host("127.0.0.1"))


def _no_guard(policy):
    import contextlib
    import threading

    @contextlib.contextmanager
    def cm():
        yield threading.Event()

    return cm()
