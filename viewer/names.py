"""Scene node names: every node the studio adds is named here and nowhere else.

viser scene names form a tree ("/a/b" is a child of "/a"); removing a parent removes its
children, and a name added twice replaces the first node.
"""

from __future__ import annotations

SPLATS = "/splats"  # results shown in the scene, one child per slot
CAPTURE = "/capture"  # the open capture: its cameras and sparse points
FRUSTUMS = f"{CAPTURE}/frustums"
SPARSE_POINTS = f"{CAPTURE}/points"


def splats(slot: str) -> str:
    """The splat node of a result slot ("A", "B")."""
    return f"{SPLATS}/{slot}"


def frustum(index: int) -> str:
    """The frustum of frame ``index`` of the open capture."""
    return f"{FRUSTUMS}/{index:05d}"

PATH = "/path"  # the camera path being edited: spline, keyframes, gizmos, playhead
PATH_SPLINE = f"{PATH}/spline"
PATH_PLAYHEAD = f"{PATH}/playhead"
PATH_KEYFRAMES = f"{PATH}/keyframes"
PATH_GIZMOS = f"{PATH}/gizmos"


def path_keyframe(index: int) -> str:
    """The frustum of keyframe ``index`` of the camera path."""
    return f"{PATH_KEYFRAMES}/{index:04d}"


def path_gizmo(index: int) -> str:
    """The transform gizmo that moves keyframe ``index``."""
    return f"{PATH_GIZMOS}/{index:04d}"
