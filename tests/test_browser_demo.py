"""The whole studio on the demo in a real browser (Playwright + Debian's headless chromium,
WebGL in software): first start shows the demo capture, Ingest + SfM recovers its cameras
with pycolmap (24 frames), Long-LRM reconstructs it (the shipped tiny-demo weights when present,
else a random-init tiny checkpoint in the workspace's weights folder), a short 3DGS optimization
goes into slot B, and the Compare tab scores both on the held-out views.

Screenshots go to test-artifacts/browser/. Skipped when chromium or Playwright is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from waits import eventually, scaled

from studio.bench.browser import VIEWPORT, headless_chromium, missing_reason, screenshot_rgb
from studio.bench.studio import TINY_NAME, write_tiny_long_lrm
from studio.config import StudioConfig
from studio.demo import DEMO_ASSET, DEMO_NAME, demo_video
from studio.models import WEIGHTS_DIR
from viewer import names

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
T = 30.0


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / name)


def test_demo_sfm_reconstruct_optimize_compare(tmp_path):
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    if demo_video(DEMO_ASSET) is None:
        pytest.skip("this build ships no demo video")
    from viewer.app import start_studio

    ws = tmp_path / "ws"
    write_tiny_long_lrm(ws / WEIGHTS_DIR / TINY_NAME)
    # Headless chromium draws WebGL in software: one frame of the demo model's 57k in-view splats
    # takes 6-30 s on 2 cores and the page stops answering clicks meanwhile, so the browser
    # gets at most 5,000 splats per result here (the studio's --browser-budget; the server keeps all).
    running = start_studio(StudioConfig(workspace=ws, port=0, browser_budget=5_000))
    studio, viewer, server = running.studio, running.viewer, running.server
    nodes = server.scene._handle_from_node_name
    try:
        # first start: the demo capture is open, with ground-truth cameras
        assert studio.capture is not None and studio.capture.name == DEMO_NAME
        assert studio.capture.meta["cameras"] == "ground truth"
        with headless_chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(running.url)
            page.get_by_text("Rescan workspace").wait_for(timeout=scaled(T) * 1000)
            assert names.frustum(0) in nodes
            shot(page, "demo_01_start.png")

            # Ingest + SfM on the demo video (prefilled), fewer frames to keep pycolmap short
            assert viewer.capture.source.value == str(demo_video(DEMO_ASSET))
            viewer.capture.frames.value = 24
            page.get_by_role("button", name="Ingest + SfM").click()
            eventually(lambda: studio.capture is not None and studio.capture.name == f"{DEMO_NAME}-sfm",
                       "Ingest + SfM never opened the new capture", timeout=150)  # fmt: skip
            cap = studio.capture
            assert len(cap) >= 0.8 * 24 and cap.load_points() is not None
            shot(page, "demo_02_sfm.png")

            # Reconstruct with the default model (tiny-demo shipped, else the tiny checkpoint)
            page.get_by_role("tab", name="Reconstruct").click()
            label = viewer.reconstruct.model.value
            assert label.startswith("long-lrm") and ("tiny-demo" in label or TINY_NAME in label), label
            page.get_by_role("button", name="Reconstruct").click()
            eventually(
                lambda: "A" in studio.shown and studio.shown["A"].run_id, "no Long-LRM run in A", timeout=90
            )
            run_a = studio.shown["A"].run_id

            # a short optimization into slot B
            page.get_by_role("tab", name="Optimize").click()
            viewer.optimize.steps.value = 60
            viewer.optimize.slot.value = "B"
            page.get_by_role("button", name="Start").click()
            eventually(lambda: studio.training is not None and studio.training.state == "done",
                       "the optimization never finished", timeout=150)  # fmt: skip
            eventually(lambda: "B" in studio.shown and studio.shown["B"].run_id == studio.training.run_id,
                       "the optimized run is not in B")  # fmt: skip
            assert studio.shown["A"].run_id == run_a
            assert names.splats("A") in nodes and names.splats("B") in nodes

            # compare on the held-out views
            page.get_by_role("tab", name="Compare").click()
            page.get_by_role("button", name="Compare on held-out views").click()
            eventually(lambda: studio.compare_state.heldout is not None, "no held-out comparison", timeout=90)
            h = studio.compare_state.heldout
            assert len(h.file_paths) == cap.splits.count("test") >= 2
            assert all(np.isfinite(h.a.psnr)) and all(np.isfinite(h.b.psnr)) and h.b.num_gaussians > 0
            mean = f"{h.b.mean_psnr:.2f}"
            page.get_by_text(re.compile("Held-out views of")).first.wait_for(timeout=scaled(T) * 1000)
            eventually(lambda: page.get_by_text(mean).count() > 0, f"the table never showed {mean}")
            shot(page, "demo_03_compare.png")

            # the 3D view shows splats: a canvas far from blank
            canvas = eventually(lambda: (img := screenshot_rgb(page)).astype(np.float64).std() > 15 and img,
                                "the canvas looks blank")  # fmt: skip
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            iio.imwrite(ARTIFACTS / "demo_04_canvas.png", canvas)

            # A/B toggle by the hotkey T in the page
            page.mouse.click(200, 400)  # focus the 3D view
            page.keyboard.press("t")
            eventually(
                lambda: studio.compare_state.showing == "A", "the T hotkey did not toggle A/B", timeout=10
            )
            eventually(lambda: not viewer.scene.splats["B"].visible, "B is still visible")
            page.close()
    finally:
        running.stop()
