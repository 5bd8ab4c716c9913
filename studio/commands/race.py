"""``lrm-studio race CAPTURE --feed-forward MODEL --steps N``: a feed-forward result refined by
3DGS against 3DGS from the SfM points, as test PSNR against wall time (studio/race.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from studio.race import RaceOptions, race


def main(
    capture: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")],
    options: Annotated[RaceOptions, tyro.conf.arg(name="")] = RaceOptions(),  # noqa: B008 (frozen)
) -> int:
    """Race a refined feed-forward result against 3DGS from the sparse points on CAPTURE, with
    the same optimizer preset and steps; writes CAPTURE/races/<id>.json and prints both curves.

    Args:
        capture: a capture folder (with cameras.json and points).
        options: see RaceOptions.
    """
    from studio.console import console, ctrl_c_cancels, print_table, progress_bar, setup_logging
    from studio.race import read_race

    setup_logging()
    with ctrl_c_cancels() as token, progress_bar("race") as report:
        path = race(capture, options, progress=report, cancel=token)
    d = read_race(path)
    for name, c in d["contenders"].items():
        rows = [[p["step"], p["time_s"], p["psnr"]] for p in c["curve"]]
        title = f"{name} (run {c['run']}; start {c['init_time']['total_s']:.1f} s)"
        print_table(title, ["step", "time s", "PSNR dB"], rows)
    s = d["summary"]
    reach = s["refined_reaches_sfm_final_s"]
    finals = f"refined {s['refined_final_psnr']:.2f} dB, from SfM points {s['sfm_final_psnr']:.2f} dB"
    reached = (
        f"the refined run reaches the SfM run's final PSNR at {reach:.1f} s"
        if reach is not None
        else "the refined run never reaches the SfM run's final PSNR"
    )
    console.print(f"final PSNR: {finals}; {reached}", highlight=False)
    console.print(f"race written to {path}", highlight=False)
    return 0
