"""Another web page in the same browser must not reach the studio: Chromium loads a page from a
second loopback port that opens a websocket to the studio (what any site the user visits could
do); the handshake is refused and nothing of the studio's state arrives, while the studio's own
page in the same browser connects."""

from __future__ import annotations

import http.server
import threading

import pytest
import viser
from studio_helpers import make_capture
from waits import eventually, scaled

from studio.bench.browser import VIEWPORT, headless_chromium, missing_reason
from studio.config import StudioConfig

pytestmark = pytest.mark.browser
TIMEOUT_S = 60.0

ATTACK = """<!doctype html><html><body><script>
window.result = {events: [], bytes: 0, done: false};
const ws = new WebSocket("ws://127.0.0.1:%(port)d", ["viser-v%(version)s"]);
ws.binaryType = "arraybuffer";
ws.onopen = () => result.events.push("open");
ws.onmessage = (e) => { result.events.push("message"); result.bytes += e.data.byteLength || 0; };
ws.onerror = () => result.events.push("error");
ws.onclose = (e) => { result.events.push("close " + e.code); result.done = true; };
</script></body></html>"""


def serve_page(html: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1]


def test_a_page_from_another_loopback_port_cannot_use_the_studio(tmp_path, gen):
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    from viewer.app import start_studio

    make_capture(tmp_path / "ws" / "cap", 4, gen, points=50)
    running = start_studio(StudioConfig(workspace=tmp_path / "ws", port=0, demo=False))
    handled: list[int] = []  # websocket connections that reached viser (private API)
    running.server._websock_server.on_client_connect(lambda conn: handled.append(conn.client_id))
    httpd, attacker_port = serve_page(ATTACK % {"port": running.port, "version": viser.__version__})
    try:
        with headless_chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{attacker_port}/")
            result = eventually(
                lambda: page.evaluate("window.result.done && window.result"), "the socket closed", TIMEOUT_S
            )
            assert "open" not in result["events"] and "message" not in result["events"], result
            assert result["bytes"] == 0 and handled == []
            # the studio's own page, in the same browser, connects
            own = browser.new_page(viewport=VIEWPORT)
            own.goto(running.url)
            own.get_by_text("Rescan workspace").wait_for(timeout=scaled(TIMEOUT_S) * 1000)
            assert eventually(lambda: len(handled) >= 1, "the studio's page connected", timeout=TIMEOUT_S)
    finally:
        httpd.shutdown()
        running.stop()
