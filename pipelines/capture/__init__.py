"""Captures: the capture folder format, image I/O, and video / photo ingest."""

from pipelines.capture.folder import Capture, default_splits

__all__ = ["Capture", "default_splits"]
