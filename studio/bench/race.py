"""``lrm-studio bench race``: the race (studio/race.py) on the demo with real SfM.

By default the demo video goes through ``lrm-studio sfm`` first (pycolmap, FRAMES frames), so
the 3DGS contender starts from real SfM points and both curves count SfM's time, as on a user's
capture (the studio's bundled demo capture has ground-truth cameras and exact surface points,
which would flatter the SfM side). Then the shipped Long-LRM demo model reconstructs, its result
is refined, and 3DGS optimizes from the sparse points with the same preset and steps. Prints
both curves, the final PSNRs, when the refined run reaches the SfM run's final PSNR and which is
ahead at equal time; ``--json`` keeps it all.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from studio.bench.common import save_results
from studio.console import default_is, device_description, print_table
from studio.race import RaceOptions

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "demo.mp4"


def main(
    *,
    capture: Path | None = None,
    frames: int = 48,
    feed_forward: str = "long-lrm",
    steps: Annotated[int | None, default_is("the optimizer preset's")] = None,
    evaluations: int = 12,
    device: str = "auto",
    json: Path | None = None,
) -> int:
    """Race a refined feed-forward result against 3DGS from SfM points (see the module doc).

    Args:
        capture: a capture folder to race on instead of the demo video through SfM.
        frames: frames of the demo video given to SfM.
        feed_forward: the feed-forward model (its shipped demo weights when present).
        steps: optimization steps for both contenders.
        evaluations: test evaluations along each curve.
        device: auto, cpu, cuda.
        json: write the race (and the machine) here.
    """
    from pipelines.capture.ingest import IngestConfig
    from pipelines.models.runtime import resolve_device
    from studio.captures import sfm_to_workspace
    from studio.console import console, progress_bar
    from studio.race import race, read_race

    options = replace(
        RaceOptions(), feed_forward=feed_forward, steps=steps, evaluations=evaluations, device=device
    )
    with tempfile.TemporaryDirectory() as tmp:
        if capture is None:
            with progress_bar("sfm") as report:
                capture = sfm_to_workspace(
                    DEMO, Path(tmp), name="demo-sfm", ingest_config=IngestConfig(max_frames=frames),
                    progress=report,
                ).root  # fmt: skip
        with progress_bar("race") as report:
            d = read_race(race(capture, options, progress=report))
    for name, c in d["contenders"].items():
        init = c["init_time"]
        rows = [[p["step"], p["time_s"], p["psnr"]] for p in c["curve"]]
        parts = f"SfM {init['sfm_s']:.1f} s + model {init['feed_forward_s']:.1f} s"
        start = f"starts at {init['total_s']:.1f} s ({parts})"
        print_table(f"{name}: {start}", ["step", "time s", "test PSNR dB"], rows)
    s = d["summary"]
    reach = s["refined_reaches_sfm_final_s"]
    ahead = s["ahead"]
    finals = f"final PSNR refined {s['refined_final_psnr']:.2f} dB, from SfM {s['sfm_final_psnr']:.2f} dB"
    reached = f"refined reaches the SfM final {f'at {reach:.1f} s' if reach is not None else 'never'}"
    at = ""
    if ahead:
        vs = f"{ahead['a_psnr']:.2f} vs {ahead['b_psnr']:.2f} dB"
        at = f"; at {ahead['time_s']:.1f} s {ahead['ahead']} ahead ({vs})"
    console.print(
        f"{device_description(resolve_device(device))}: {finals}; {reached}{at if ahead else ''}",
        highlight=False,
    )
    save_results(json, {"device": device_description(resolve_device(device)), "race": d})
    return 0
