"""``lrm-studio bench studio``: from clicking *Reconstruct* on the demo capture to the splats
visible in the page, on this machine's CPU (or GPU), in a real browser.

A studio is served on a fresh workspace (the demo capture made on start), headless chromium
(studio/bench/browser.py) opens the page, and each repeat clicks *Reconstruct* in the page with
the panel's default model: Long-LRM ``tiny-demo`` when its shipped weights are present, else a
random-init Long-LRM ``tiny`` checkpoint written into the workspace's weights folder (same
architecture size class; the output is not meaningful, the timing is). The clock stops when the
server holds the splat node of slot A with the new run *and* the browser has received it (its
reply to a tiny render request sent after the splats: the client handles messages in order);
with real weights also when the page's 3D view has changed from before the click (random-init
splats land far outside the view). Median over ``--repeats``; the time until the server holds
the new splat node (sent to the page) and until the page answered the render request are
reported too: in a browser without a GPU (WebGL in software, studio/bench/browser.py) drawing
the splats, not the studio, dominates. The page's WebGL renderer is reported.

Examples:
    lrm-studio bench studio --repeats 3 --json out.json
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

TINY_NAME = "long-lrm-tiny.safetensors"


def write_tiny_long_lrm(path: Path, seed: int = 0) -> Path:
    """A random-init Long-LRM ``tiny`` checkpoint (safetensors with model/preset metadata)."""
    import torch

    from pipelines.models.base import load_model
    from pipelines.models.checkpoints import save_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rec = load_model("long-lrm", preset="tiny", device="cpu")
    save_weights(path, rec.model.state_dict(), {"model": "long-lrm", "preset": "tiny"})
    return path


def _wait(cond, what: str, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} (waited {timeout:.0f} s)")
        time.sleep(every)


def click_to_splats(
    repeats: int = 3, workspace: Path | None = None, timeout_s: float = 120.0, dpr: float | None = None
) -> dict:
    """Times (s) from the Reconstruct click to splats drawn in the page; see module doc. ``dpr``:
    open the page with viser's ``?fixedDpr=`` (canvas pixels per CSS pixel; None: the browser's)."""
    from studio.bench.browser import (
        VIEWPORT,
        changed_fraction,
        headless_chromium,
        screenshot_rgb,
        webgl_renderer,
    )
    from studio.config import StudioConfig
    from studio.models import WEIGHTS_DIR
    from viewer import names
    from viewer.app import start_studio

    tmp = None
    if workspace is None:
        tmp = tempfile.TemporaryDirectory(prefix="lrm-bench-studio-")
        workspace = Path(tmp.name) / "ws"
    write_tiny_long_lrm(Path(workspace) / WEIGHTS_DIR / TINY_NAME)
    running = start_studio(StudioConfig(workspace=workspace, port=0))
    times: list[float] = []
    server_times: list[float] = []  # click -> the new run's splat node held by the server (sent)
    received_times: list[float] = []  # click -> the page answered a request sent after the splats
    try:
        studio, viewer = running.studio, running.viewer
        if studio.capture is None:
            raise RuntimeError("no demo capture: this build ships no assets/demo")
        model = viewer.reconstruct.model.value
        meaningful = TINY_NAME not in model  # random-init splats land far outside the view
        with headless_chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            renderer = webgl_renderer(page)
            known = set(running.server.get_clients())
            page.goto(running.url_for(**({"fixedDpr": f"{dpr:g}"} if dpr else {})))
            page.get_by_text("Rescan workspace").wait_for(timeout=timeout_s * 1000)
            new = _wait(
                lambda: set(running.server.get_clients()) - known, "the page never connected", timeout_s
            )
            client = running.server.get_clients()[new.pop()]
            page.get_by_role("tab", name="Reconstruct").click()
            for _ in range(repeats):
                studio.hide("A")
                _wait(lambda: names.splats("A") not in running.server.scene._handle_from_node_name,
                      "slot A was not cleared", timeout_s)  # fmt: skip
                time.sleep(1.0)  # let the page redraw without splats
                before = screenshot_rgb(page)
                runs_before = {r.id for r in studio.runs()}
                t0 = time.perf_counter()
                page.get_by_role("button", name="Reconstruct").click()

                def on_server(runs_before=runs_before):
                    shown = studio.shown.get("A")
                    return (shown is not None and shown.run_id not in runs_before and shown.run_id is not None
                            and names.splats("A") in running.server.scene._handle_from_node_name)  # fmt: skip

                _wait(on_server, "the run never reached the scene", timeout_s, every=0.02)
                server_times.append(time.perf_counter() - t0)
                # The browser handles messages in order: its reply to a render request sent after
                # the splats means it has received them (a 64x96 render: a small extra cost).
                client.get_render(height=64, width=96, timeout=timeout_s)
                received_times.append(time.perf_counter() - t0)
                if meaningful:  # real weights: also wait until the splats show in the 3D view
                    _wait(lambda before=before: changed_fraction(screenshot_rgb(page), before) > 0.02,
                          "the page never drew the splats", timeout_s, every=0.02)  # fmt: skip
                times.append(time.perf_counter() - t0)
            page.close()
    finally:
        running.stop()
        if tmp is not None:
            tmp.cleanup()
    return {
        "model": model,
        "drawn_checked": meaningful,
        "times_s": times,
        "median_s": statistics.median(times),
        "server_times_s": server_times,
        "server_median_s": statistics.median(server_times),
        "received_times_s": received_times,
        "received_median_s": statistics.median(received_times),
        "webgl_renderer": renderer,
        "dpr": dpr,
    }


def main(repeats: int = 3, dpr: float | None = None, json: Path | None = None) -> int:
    """Click-to-splats time of the studio page on the demo capture (see module doc).

    Args:
        repeats: clicks timed; the median is reported.
        dpr: open the page at this fixed device-pixel ratio (viser's ?fixedDpr=; 0.5 draws a
            quarter of the pixels), as a user of a browser without a GPU can.
        json: also write the results here.
    """
    from studio.bench.browser import missing_reason
    from studio.bench.common import device_description, print_table, save_results
    from studio.console import console, setup_logging

    setup_logging()
    reason = missing_reason()
    if reason is not None:
        console.print(f"[red]error:[/red] {reason}")
        return 1
    import os

    result = click_to_splats(repeats, dpr=dpr)
    load = os.getloadavg()
    clocks = zip(result["server_times_s"], result["received_times_s"], result["times_s"], strict=True)
    rows = [[i + 1, *c] for i, c in enumerate(clocks)]
    rows.append(["median", result["server_median_s"], result["received_median_s"], result["median_s"]])
    print_table(
        f"Reconstruct click -> splats in the page ({result['model']})",
        ["repeat", "sent by the server s", "received by the page s", "drawn in the page s"],
        rows,
    )
    console.print(
        f"device: {device_description('cpu')}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
        f"page WebGL: {result['webgl_renderer']}" + (f"; fixedDpr {dpr:g}" if dpr else "")
    )
    if json is not None:
        save_results(json, {**result, "load_average": list(load), "device": device_description("cpu")})
    return 0
