"""Cameras for a capture: pycolmap SfM on the CPU, and imports / exports of other formats.

- ``build.sfm_capture``: video or photos -> capture folder (ingest, SfM, undistortion).
- ``colmap.run_sfm``: SIFT (one shared RADIAL camera), sequential / exhaustive matching,
  incremental / global mapping, the largest model kept; progress and cancel per stage.
- ``imports.import_capture``: a COLMAP model, a nerfstudio transforms.json or a Long-LRM
  opencv_cameras.json -> capture folder (distorted images undistorted).
- ``exports.export_capture``: a capture -> transforms.json or opencv_cameras.json.
- ``undistort`` and ``write``: the one undistortion and the one capture writer both use.
"""
