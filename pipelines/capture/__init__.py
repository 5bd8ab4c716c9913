"""Captures: the capture folder format, image I/O, and video / photo ingest.

``ingest.ingest`` turns a video (``video.py``: rotation, sharpest frame per window) or a photo
folder (``photos.py``: EXIF orientation, sizes, unreadable files) into frames for SfM;
``staging.staged_folder`` builds a folder beside its destination and moves it into place.
"""

from pipelines.capture.folder import Capture, default_splits

__all__ = ["Capture", "default_splits"]
