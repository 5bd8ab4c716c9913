"""The page on the kind of capture that broke it: a portrait 9:16 phone-style capture, a 90-degree
frontal arc in front of an object against a wall (tests/capture_shapes.py). In a real browser:
reconstruct (Long-LRM, shown as A) -> optimize (shown as B) -> compare on the held-out views
-> the automatic orbit -> an A|B video. Checked: the charts plot the training curves, the compare
table has the baselines as rows, every frame of the orbit looks at the object from in front of
the wall, the video keeps the portrait aspect, and three.js warns of no NaN in the geometry the
studio sent (computeBoundingSphere; viser's own splat quad aside, browser_helpers)."""

from __future__ import annotations

import numpy as np
import pytest
from browser_helpers import TIMEOUT_S, artifact, nan_warnings, open_page, plotted
from capture_shapes import make_shape_capture
from waits import eventually, scaled

from pipelines.paths import sample_cameras
from studio.config import StudioConfig

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PORTRAIT_VIEWPORT = {"width": 960, "height": 900}


@pytest.fixture
def arc_studio(tmp_path, seed):
    from viewer.app import start_studio

    shape = make_shape_capture(tmp_path / "ws" / "arc", "portrait", "frontal-arc", seed=seed % 1000)
    r = start_studio(StudioConfig(workspace=tmp_path / "ws", port=0, demo=False, capture="arc"))
    r.shape = shape
    yield r
    r.stop()


def test_portrait_frontal_arc_from_reconstruct_to_video(browser, arc_studio):
    running, studio = arc_studio, arc_studio.studio
    v = running.viewer
    console: list[str] = []
    page, _ = open_page(browser, running, viewport=PORTRAIT_VIEWPORT, console=console)

    # reconstruct with the default model (Long-LRM tiny-demo), shown as A
    page.get_by_role("tab", name="Reconstruct").click()
    page.get_by_role("button", name="Reconstruct").click()
    eventually(
        lambda: "A" in studio.shown and studio.shown["A"].run_id, "no feed-forward run in A", timeout=120
    )
    ff_run = studio.shown["A"].run_id

    # optimize from the sparse points into B; the charts plot the curves
    page.get_by_role("tab", name="Optimize").click()
    v.optimize.steps.value = 100
    v.optimize.slot.value = "B"
    page.get_by_role("button", name="Start").click()
    eventually(
        lambda: studio.training is not None and studio.training.state == "done", "optimize", timeout=300
    )
    eventually(lambda: "B" in studio.shown and studio.shown["B"].run_id == studio.training.run_id, "B shown")
    t = studio.training
    for title, points in (("Training loss", t.loss_curve), ("Test PSNR (dB)", t.psnr_curve)):
        chart = eventually(
            lambda title=title, points=points: (
                (c := plotted(page, title)) and len(c["x"]) == len(points) and c
            ),
            title,
        )
        np.testing.assert_allclose(chart["y"], [p[1] for p in points], rtol=1e-6)
        assert np.isfinite([chart["xmin"], chart["xmax"]]).all()

    # compare on the held-out views: A, B and the baselines as rows
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare on held-out views").click()
    eventually(lambda: studio.compare_state.heldout is not None, "no held-out comparison", timeout=120)
    for text in ("Held-out views of", "mean input colour", "nearest input, reprojected", ff_run):
        page.get_by_text(text).first.wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    page.screenshot(path=artifact("20_portrait_arc_compare.png"))

    # the automatic orbit follows the arc: every frame sees the object, from in front of the wall
    page.get_by_role("tab", name="Path").click()
    page.get_by_role("button", name="Orbit the scene").click()
    eventually(lambda: len(studio.paths.path) > 0, "no orbit path")
    path = studio.paths.path
    cams = sample_cameras(path, 36, 64)
    uv, z = cams.project(running.shape.object_center[None].float())
    inside = (z[:, 0] > 0) & (uv[:, 0, 0] >= 0) & (uv[:, 0, 0] < 36) & (uv[:, 0, 1] >= 0) & (uv[:, 0, 1] < 64)
    assert bool(inside.all()), f"{int((~inside).sum())} of {len(cams)} frames do not see the object"
    assert float(cams.centers()[:, 1].min()) > running.shape.wall_y  # in front of the wall (+y side)

    # an A|B video along it, short and small; portrait panels
    v.paths.duration.value = 1.0
    v.paths.fps.value = 8.0
    v.paths.height.value = 64
    page.get_by_role("button", name="Render video").click()
    eventually(lambda: studio.paths.last_video is not None, "no video", timeout=180)
    import imageio.v3 as iio

    frame = iio.imread(studio.paths.last_video, index=0)
    assert frame.shape[0] == 64 and frame.shape[1] / 2 < frame.shape[0]  # two portrait panels
    assert not nan_warnings(console), nan_warnings(console)
