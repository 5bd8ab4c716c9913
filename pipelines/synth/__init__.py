"""Procedural scenes with exact ground truth, rendered by an analytic ray caster (PyTorch).

- ``scene``: ``object_scene`` (Zeroverse-style objects), ``room_scene`` (MegaSynth-style rooms),
  ``primitive_scene`` (explicit primitives); ``Scene``.
- ``primitives``: exact ray intersections (box, sphere, cylinder, cone, torus, quad).
- ``textures``: procedural and CC0-photograph textures fixed to object space.
- ``raycast``: ``render(scene, cameras, supersample=k) -> SynthRender`` (rgb, depth, normals, mask).
- ``trajectories``: ``orbit``, ``walk_through``, ``look_around``, ``HandHeld`` shake.
- ``capture``: ``render_capture`` (MP4 and/or images + ground-truth cameras), ``read_gt_cameras``.
- ``stream``: training examples with Long-LRM / GeoLRM view sampling.
- ``demo``: the bundled demo capture (``python -m pipelines.synth.demo --out assets/demo``).

Submodules are imported explicitly (``from pipelines.synth.raycast import render``); importing
this package loads nothing heavy.
"""
