"""The studio page in a real browser: Playwright drives Debian's headless chromium (WebGL in
software: Mesa llvmpipe, or SwiftShader without Mesa) against a studio served in-process on a
free port.

Screenshots go to test-artifacts/browser/ (gitignored). Skipped, with the reason, when
chromium or Playwright is missing; .ci/run installs chromium with apt-get.
"""

from __future__ import annotations

import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from browser_helpers import TIMEOUT_S, artifact, open_page, plotted
from waits import eventually, scaled

from pipelines.capture.images import write_image
from studio.bench.browser import VIEWPORT, changed_fraction, screenshot_rgb
from viewer import names

pytestmark = pytest.mark.browser


def test_load_run_shows_splats_in_every_tab(browser, running):
    page, client = open_page(browser, running)
    page2, _ = open_page(browser, running)  # a second tab, open while the state changes
    page2.get_by_role("tab", name="Runs").click()
    page.screenshot(path=artifact("01_capture_panel.png"))
    before = screenshot_rgb(page)

    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("button", name="Show as A").click()
    # The server holds the splat node...
    nodes = running.server.scene._handle_from_node_name
    eventually(lambda: names.splats("A") in nodes, "no splat node on the server")
    # (the count is recorded just after the node is added, on the callback's thread)
    eventually(lambda: running.viewer.scene.splat_counts.get("A") == (1500, 1500), "splat count not recorded")
    # ... the other tab hears of it ...
    page2.get_by_text(f"3dgs {running.run_dir.name}").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page2.close()

    # ... and the browser draws it: the view changes and is far from blank.
    def drawn():
        now = screenshot_rgb(page)
        return now if changed_fraction(now, before) > 0.05 and now.std() > 20 else None

    after = eventually(drawn, "the splats never appeared in the page")
    iio.imwrite(artifact("02_splats_canvas.png"), after)
    page.screenshot(path=artifact("02_splats_page.png"))
    # viser's own WebGL read-back of the same client (no GUI overlays).
    render = client.get_render(height=360, width=480, timeout=scaled(TIMEOUT_S))
    iio.imwrite(artifact("03_client_render.png"), render)
    assert render.shape == (360, 480, 3) and render.astype(np.float64).std() > 20
    page.close()


def test_fixed_dpr_url_draws_a_quarter_of_the_pixels(browser, running):
    """The URL `lrm-studio serve` prints for browsers without a GPU (?fixedDpr=0.5) makes the 3D
    canvas half as wide and high in device pixels as on the page."""
    sizes = {}
    for query in ({}, {"fixedDpr": 0.5}):
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(running.url_for(**query))
        page.get_by_text("Rescan workspace").wait_for(timeout=scaled(TIMEOUT_S) * 1000)
        three = page.locator("canvas[data-engine^='three.js']")  # the 3D view
        three.wait_for(timeout=scaled(TIMEOUT_S) * 1000)

        def sized(three=three):  # [width, height, clientWidth, clientHeight] once drawn into
            size = three.evaluate("c => [c.width, c.height, c.clientWidth, c.clientHeight]")
            return size if size[0] > 0 else None

        sizes[str(query)] = eventually(sized, "the 3D canvas never got a size")
        page.close()
    w, h, cw, ch = sizes[str({})]
    assert cw > 300 and (w, h) == (cw, ch)  # headless chromium: 1 device pixel per CSS pixel
    w, h, cw, ch = sizes[str({"fixedDpr": 0.5})]
    assert abs(w - cw / 2) <= 1 and abs(h - ch / 2) <= 1, sizes


def test_delete_run_after_confirmation(browser, running):
    page, _ = open_page(browser, running)
    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("button", name="Delete run...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Delete run {running.run_dir.name}?").wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.screenshot(path=artifact("04_delete_confirmation.png"))
    assert running.run_dir.exists()  # nothing deleted before the confirmation
    dialog.get_by_role("button", name="Delete").click()
    eventually(lambda: not running.run_dir.exists(), "the run folder was not deleted")
    page.get_by_text("No runs of").wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.close()


def test_upload_zip_of_photos_streams_to_disk(browser, running, tmp_path, gen):
    photos = {}
    for i in range(3):  # noisy 512x512 PNGs: the zip spans several 512 KiB upload parts
        path = tmp_path / f"IMG {i}.png"
        write_image(path, torch.rand(3, 512, 512, generator=gen))
        photos[path.name] = path.read_bytes()
    zpath = tmp_path / "my trip.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        for name, data in photos.items():
            zf.writestr(f"../../{name}", data)  # hostile member names stay inside the workspace
    assert zpath.stat().st_size > 2 * 512 * 1024

    page, _ = open_page(browser, running)
    page.locator("input[type=file]").set_input_files(str(zpath))
    dest = running.studio.uploads_dir / "my_trip"
    texts = page.locator("input.mantine-TextInput-input")
    eventually(
        lambda: "uploads/my_trip" in texts.evaluate_all("els => els.map(e => e.value)"),
        "the Source field never showed the upload (relative to the workspace)",
    )
    assert running.viewer.capture.source.value == "uploads/my_trip"
    assert running.viewer.capture.name.value == "my_trip"
    page.get_by_text("folder with 3 photos").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.screenshot(path=artifact("05_upload.png"))
    got = {p.name: p.read_bytes() for p in dest.iterdir()}
    assert got == {name.replace(" ", "_"): data for name, data in photos.items()}
    leftovers = [p.name for p in running.studio.uploads_dir.iterdir() if p.name != "my_trip"]
    assert leftovers == []  # no temp part file, the zip removed after unpacking
    assert not (running.studio.workspace.parent / "IMG_0.png").exists()
    page.close()


def test_job_failure_is_a_notification_that_says_why(browser, running):
    page, _ = open_page(browser, running)

    def sfm(progress, cancel):
        progress(0.3, "matching features")
        raise RuntimeError("only 3 of 40 frames registered; film with more overlap between frames")

    job = running.studio.jobs.submit("SfM on garden", sfm)
    assert running.studio.jobs.wait(job.id, scaled(TIMEOUT_S)).status == "failed"
    page.get_by_text("SfM on garden failed").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.get_by_text("only 3 of 40 frames registered").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.screenshot(path=artifact("06_failure_notification.png"))
    page.close()


def test_optimize_panel_trains_live_in_the_page(browser, running):
    page, _ = open_page(browser, running)
    page.get_by_role("tab", name="Optimize").click()
    page.get_by_text("Training loss").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    running.viewer.optimize.steps.value = 150  # few steps: the cpu-fast preset, shortened
    page.get_by_role("button", name="Start").click()
    studio = running.studio

    def started():
        t = studio.training
        return t is not None and t.state != "queued" and t

    t = eventually(started, "the job never started")
    assert t.state in ("running", "done"), (t.state, t.error)
    # the first step waits for the CPU renderer's numba kernels: compiled on first use (about 25 s
    # on an idle 2-core machine, more beside the whole suite and the software-WebGL browser)
    eventually(lambda: studio.training.step > 0, "training never took a step", timeout=240)
    # the status reaches the page while it trains, then the finished run is shown as A
    page.get_by_text("Step ").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    eventually(lambda: studio.training.state == "done", "training never finished", timeout=120)
    page.get_by_text("Done").first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    # the charts plot the curves: uPlot's own data and scales, read through viser's testpoint
    curves = {"Training loss": studio.training.loss_curve, "Test PSNR (dB)": studio.training.psnr_curve}
    for title, points in curves.items():
        assert len(points) >= 2, (title, points)

        def drawn(title=title, points=points):
            chart = plotted(page, title)
            return chart if chart is not None and len(chart["x"]) == len(points) else None

        chart = eventually(drawn, f"the {title} chart never plotted the {len(points)} points")
        np.testing.assert_allclose(chart["x"], [p[0] for p in points])
        np.testing.assert_allclose(chart["y"], [p[1] for p in points], rtol=1e-6)
        assert np.isfinite([chart["xmin"], chart["xmax"]]).all() and chart["xmax"] > chart["xmin"], chart
    assert studio.shown["A"].run_id == studio.training.run_id
    page.screenshot(path=artifact("07_optimize_panel.png"))
    page.close()
