"""Cameras panel: registered / unregistered counts of the open capture, frustum and sparse
point display. The frustums themselves (with thumbnails; click one to move every tab's view
there) live in viewer.scene.SceneView; SfM runs from the Capture panel (Ingest + SfM), its
stage progress under Jobs."""

from __future__ import annotations

from dataclasses import dataclass

import viser

from studio.app import Studio
from viewer.scene import SceneView


@dataclass
class CamerasPanel:
    counts: viser.GuiMarkdownHandle  # registered / unregistered / splits / points
    show_cameras: viser.GuiCheckboxHandle
    show_points: viser.GuiCheckboxHandle
    frustum_size: viser.GuiSliderHandle  # fraction of the capture's extent

    def refresh(self, studio: Studio, scene: SceneView) -> None:
        self.counts.content = cameras_markdown(studio, scene)


def cameras_markdown(studio: Studio, scene: SceneView) -> str:
    cap = studio.capture
    if cap is None:
        return "No capture open."
    n_test = len(cap.indices("test"))
    total = len(cap) + len(cap.unregistered)
    n_points = 0 if scene.points is None else len(scene.points.points)
    lines = [
        f"**Registered:** {len(cap)} of {total} frames ({len(cap) - n_test} train, {n_test} test)",
        f"**Unregistered:** {len(cap.unregistered)}",
        f"**Sparse points:** {n_points:,}",
        "Click a frustum to look through it (blue: train, orange: test).",
    ]
    return "  \n".join(lines)


def add_cameras_panel(server: viser.ViserServer, studio: Studio, scene: SceneView) -> CamerasPanel:
    """Widgets in the current GUI container; refreshed by the viewer on CAPTURE."""
    panel = CamerasPanel(
        counts=server.gui.add_markdown(""),
        show_cameras=server.gui.add_checkbox("Show cameras", initial_value=True),
        show_points=server.gui.add_checkbox("Show sparse points", initial_value=True),
        frustum_size=server.gui.add_slider(
            "Frustum size", min=0.01, max=0.3, step=0.01, initial_value=scene.frustum_scale
        ),
    )

    @panel.show_cameras.on_update
    def _(_: viser.GuiEvent) -> None:
        scene.set_cameras_visible(panel.show_cameras.value)

    @panel.show_points.on_update
    def _(_: viser.GuiEvent) -> None:
        scene.set_points_visible(panel.show_points.value)

    @panel.frustum_size.on_update
    def _(_: viser.GuiEvent) -> None:
        scene.set_frustum_scale(panel.frustum_size.value)

    panel.refresh(studio, scene)
    return panel
