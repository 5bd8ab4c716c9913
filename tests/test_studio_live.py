"""The studio's live reconstruction without a browser: the job feeds the capture's frames chunk by
chunk and every chunk puts new Gaussians in the scene slot (and, through the viewer, new splats
on the page); the finished run replaces them. Non-streaming models refuse live mode."""

from __future__ import annotations

import threading

import pytest
import viser
from studio_helpers import make_capture

from studio.app import RUNS, SCENE, Studio
from studio.config import StudioConfig
from viewer.app import build_viewer


@pytest.fixture
def studio(tmp_path, gen):
    ws = tmp_path / "ws"
    make_capture(ws / "cap", 9, gen, width=64, height=48, points=0)  # 7 train frames, 2 test
    s = Studio(ws, config=StudioConfig(workspace=ws, browser_budget=5000))
    s.open_capture("cap")
    yield s
    s.close()


def test_live_job_shows_successive_gaussians_per_chunk(studio):
    events: list[tuple[str, str | None, int | None, str | None]] = []
    lock = threading.Lock()

    def record(topic: str) -> None:
        shown = studio.shown.get("A")
        with lock:
            events.append(
                (topic, shown and shown.label, shown and shown.gaussians.num, shown and shown.run_id)
            )

    studio.subscribe(record)
    job = studio.submit_reconstruct(
        "ttt-lrm", preset="tiny-ar", views=6, live=True, chunk_views=2, device="cpu"
    )
    state = studio.jobs.wait(job.id, 120)
    assert state.status == "done", state.error
    live = [e for e in events if e[0] == SCENE and e[1] and "live" in e[1]]
    assert [e[1] for e in live] == [
        f"ttt-lrm live: {v} views (chunk {i + 1})" for i, v in enumerate((2, 4, 6))
    ]
    counts = [e[2] for e in live]
    assert counts[0] > 0 and counts == sorted(counts) and len(set(counts)) == 3  # merge previews grow
    assert all(e[3] is None for e in live)  # live results are not runs yet
    # the finished run is written, announced and shown in A
    assert any(e[0] == RUNS for e in events[events.index(live[-1]) :])
    final = studio.shown["A"]
    assert final.run_id == state.result.name and final.run_id in {r.id for r in studio.runs()}
    run = studio.run(final.run_id)
    assert [r["views"] for r in run.info["stream"]] == [2, 4, 6]


def test_live_needs_a_streaming_model(studio):
    with pytest.raises(ValueError, match="does not stream"):
        studio.submit_reconstruct("long-lrm", preset="tiny", live=True)
    with pytest.raises(ValueError, match="unknown model"):
        studio.submit_reconstruct("no-such-model")


def test_viewer_toggle_streams_splats_into_the_scene(studio):
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        viewer = build_viewer(server, studio)
        panel = viewer.reconstruct
        panel.model.value = "ttt-lrm"  # the default is a shipped weights file when one ships
        panel.refresh(studio)
        assert not panel.live.disabled and panel.chunk_views.disabled
        panel.model.value = "long-lrm"
        panel.refresh(studio)
        assert panel.live.disabled
        panel.model.value = "ttt-lrm"
        panel.preset.value = "tiny-ar"
        panel.views.value = 5
        panel.live.value = True
        panel.chunk_views.value = 2
        panel.refresh(studio)
        assert not panel.chunk_views.disabled

        seen: list[tuple[int, int]] = []
        studio.subscribe(lambda topic: topic == SCENE and "A" in viewer.scene.splat_counts and seen.append(
            viewer.scene.splat_counts["A"]))  # fmt: skip
        for cb in panel.run._impl.update_cb:  # what a click in the browser runs
            cb(viser.GuiEvent(client=None, client_id=0, target=panel.run))
        studio.jobs.wait_idle(120)
        assert [s.status for s in studio.jobs.jobs()] == ["done"]
        # three live updates of the splat node (5 views in chunks of 2), then the finished run
        totals = [total for _, total in seen]  # (sent under the browser budget, total) per update
        assert len(seen) == 4 and totals[:3] == sorted(set(totals[:3])) and totals[0] > 0
        assert studio.shown["A"].run_id is not None
    finally:
        server.stop()
