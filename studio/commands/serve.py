"""``lrm-studio serve``: the studio in the browser (also what plain ``lrm-studio`` runs)."""

from __future__ import annotations

import signal
import sys
import threading

import tyro

from studio.config import StudioConfig
from studio.console import setup_logging

DEFAULT = StudioConfig()


def serve(config: tyro.conf.OmitArgPrefixes[StudioConfig] = DEFAULT) -> int:
    """Serve the studio on http://HOST:PORT (the next free port when PORT is taken) until Ctrl-C.

    Opens the workspace (the bundled demo capture is copied in on first start) and prints
    the URL to open in a browser.
    """
    from viewer.app import start_studio  # the page is only needed here

    setup_logging()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        running = start_studio(config)
    except ValueError as e:  # e.g. --capture names no capture of the workspace
        print(f"lrm-studio: {e}", file=sys.stderr)
        return 2
    print(
        f"lrm-studio: serving {running.url}  (workspace {running.studio.workspace}; Ctrl-C stops)\n"
        f"lrm-studio: in a browser without GPU acceleration (splats slow to draw), open "
        f"{running.url.rstrip('/')}/?fixedDpr=0.5 (a quarter of the pixels to draw)",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        running.stop()
    return 0
