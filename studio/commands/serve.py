"""``lrm-studio serve``: the studio in the browser (also what plain ``lrm-studio`` runs)."""

from __future__ import annotations

import signal
import sys
import threading

import tyro

from studio.config import StudioConfig
from studio.console import setup_logging

DEFAULT = StudioConfig()


def _import_pycolmap_first() -> None:
    """pycolmap installs glog's failure-signal handler when it is imported, and that handler
    takes SIGTERM over (a stack dump and an abort instead of a clean stop). Importing it here, on
    the main thread before the studio's own SIGTERM handler goes in, makes the SfM jobs' later
    imports no-ops."""
    try:
        import pycolmap  # noqa: F401
    except ImportError:  # a build without SfM
        pass


def serve(config: tyro.conf.OmitArgPrefixes[StudioConfig] = DEFAULT) -> int:
    """Serve the studio on http://HOST:PORT (the next free port when PORT is taken) until Ctrl-C.

    Opens the workspace (the bundled demo capture is copied in on first start) and prints
    the URL to open in a browser.
    """
    from viewer.access import is_loopback_host, network_addresses
    from viewer.app import start_studio  # the page is only needed here

    setup_logging()
    _import_pycolmap_first()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        running = start_studio(config)
    except ValueError as e:  # e.g. --capture names no capture of the workspace
        print(f"lrm-studio: {e}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
        return 2
    lines = [f"lrm-studio: serving {running.url}  (workspace {running.studio.workspace}; Ctrl-C stops)"]
    if not is_loopback_host(config.host):
        if config.host in ("0.0.0.0", "::", ""):
            hosts = network_addresses()
            where = "on every network interface of this machine"
        else:
            hosts, where = [config.host], f"on {config.host}"
        lines.append(
            f"lrm-studio: WARNING: the studio is reachable from the network ({where}): anyone who can "
            "reach this machine and has the URL with its token can use it and read the workspace"
        )
        lines += [f"lrm-studio: from other machines: {running.url_for(h)}" for h in hosts]
    lines.append(
        "lrm-studio: in a browser without GPU acceleration (splats slow to draw), open "
        f"{running.url_for(fixedDpr=0.5)} (a quarter of the pixels to draw)"
    )
    print("\n".join(lines), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        running.stop()
    return 0
