"""The Path tab in a real browser: an automatic orbit drawn in the scene, and the time slider
moving the browser's own camera onto the path (what the tab reports back to the server)."""

from __future__ import annotations

import numpy as np
import pytest
from browser_helpers import TIMEOUT_S, artifact, open_page
from waits import eventually, scaled

from studio.bench.browser import changed_fraction, screenshot_rgb
from viewer import names

pytestmark = pytest.mark.browser


def test_orbit_and_time_slider_move_the_browser_camera(browser, running):
    page, client = open_page(browser, running)
    page.get_by_role("tab", name="Path").click()
    page.get_by_role("button", name="Orbit the scene").click()
    nodes = running.server.scene._handle_from_node_name
    eventually(
        lambda: names.PATH_SPLINE in nodes and names.path_keyframe(11) in nodes, "no orbit in the scene"
    )
    page.get_by_text("12 keyframes").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    panel = running.viewer.paths
    path = running.studio.paths.path
    t = 0.37 * path.duration_s
    c2w, fov = running.studio.paths.pose_at(t)
    want_pos, want_fwd = c2w[:3, 3].numpy(), c2w[:3, 2].numpy()
    reported: list[tuple[np.ndarray, np.ndarray, float]] = []  # camera messages sent by the browser

    @client.camera.on_update
    def _(cam) -> None:
        fwd = cam.look_at - cam.position
        reported.append((cam.position.copy(), fwd / np.linalg.norm(fwd), float(cam.fov)))

    before = screenshot_rgb(page)
    panel.time.value = t  # what Play does on every tick

    def arrived():
        return any(
            np.allclose(p, want_pos, atol=1e-3)
            and np.allclose(f, want_fwd, atol=1e-3)
            and abs(v - np.deg2rad(fov)) < 1e-3
            for p, f, v in reported
        )

    eventually(arrived, "the browser never reported its camera on the path")
    after = screenshot_rgb(page)
    assert changed_fraction(before, after) > 0.01  # and the view in the page changed
    page.screenshot(path=artifact("07_path_orbit.png"))
    page.close()
