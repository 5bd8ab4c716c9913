"""``lrm-studio``: one console script, one sub-command per studio operation.

Each command is a function in its own module whose keyword arguments tyro turns into flags;
modules are imported only when their command runs, so ``lrm-studio --help`` is instant.
Run ``lrm-studio`` with no arguments to serve the studio on the bundled demo capture.

Every failure ends as one line on stderr (``lrm-studio COMMAND: error: ...``) and exit status 1
(130 when cancelled), never a traceback: the message of an :class:`~pipelines.errors.InputError`
says what to do; anything else is a bug, reported with its type, and ``LRM_STUDIO_DEBUG=1``
shows its traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator

# name -> ("module:function", one-line help). Two-word names ("weights import") are matched first.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench render": ("studio.bench.render:main", "CPU/GPU renderer timings and peak memory"),
    "bench sfm": ("studio.bench.sfm:main", "SfM stage times and pose accuracy on the synth demo video"),
    "sfm": ("studio.commands.capture:sfm", "a capture from a video or photos (pycolmap SfM)"),
    "import": ("studio.commands.capture:import_capture", "a capture from COLMAP, nerfstudio or Long-LRM"),
    "export": ("studio.commands.capture:export", "a capture's cameras for nerfstudio or Long-LRM"),
    "export-run": ("studio.commands.export_run:main", "a run's Gaussians as .ply, .splat or .spz"),
    "bench synth": ("studio.bench.synth:main", "procedural-scene ray caster: views per second, CPU and GPU"),
    "synth": (
        "studio.commands.synth:main",
        "render a procedural scene along a hand-held path into a capture",
    ),
    "synth demo": ("studio.commands.synth:demo", "regenerate the bundled demo capture (assets/demo)"),
    "bench render-video": ("studio.bench.render_video:main", "video frames/s along a path (480p, A | B)"),
    "bench studio": ("studio.bench.studio:main", "click Reconstruct on the demo -> splats in the page"),
    "bench geolrm": ("studio.bench.geolrm:main", "GeoLRM inference time and peak memory vs number of views"),
    "serve": ("studio.commands.serve:serve", "the studio in the browser (127.0.0.1:8080; demo capture)"),
    "bench long-lrm": ("studio.bench.long_lrm:main", "Long-LRM inference time, memory, Gaussians vs views"),
    "bench ttt-lrm": ("studio.bench.ttt_lrm:main", "tttLRM time, memory vs views; per-chunk streaming"),
    "reconstruct": ("studio.commands.reconstruct:main", "run a feed-forward model on a capture"),
    "render": ("studio.commands.render:main", "runs along a camera path into an MP4 (A | B side by side)"),
    "paths export": (
        "studio.commands.paths:export",
        "a camera path as camera_path.json, in nerfstudio's world for an exported dataset",
    ),
    "weights import": ("studio.commands.weights:main", "convert an official checkpoint to safetensors"),
    "bench race": ("studio.bench.race:main", "refined feed-forward vs 3DGS from SfM on the demo (real SfM)"),
    "race": (
        "studio.commands.race:main",
        "a refined feed-forward result against 3DGS from SfM, PSNR vs time",
    ),
    "optimize": (
        "studio.commands.optimize:main",
        "3DGS optimization of a capture (gsplat's recipe; CPU or CUDA)",
    ),
    "train": ("studio.commands.train:main", "train a feed-forward model (synth or scenes; DDP via torchrun)"),
    "train export": ("studio.commands.train:export", "a training checkpoint -> safetensors"),
    "train eval": ("studio.commands.train:evaluate", "held-out PSNR: model vs two trivial baselines"),
    "eval": ("studio.commands.eval:main", "PSNR / SSIM / LPIPS of a run on its capture's test split"),
    "bench optimize": (
        "studio.bench.optimize:main",
        "3DGS optimizer: CPU steps/s; on CUDA ours vs gsplat's trainer",
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: lrm-studio [COMMAND] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    lines += ["", "With no command, serves the studio on the bundled demo capture.",
              "`lrm-studio COMMAND --help` shows a command's options."]  # fmt: skip
    return "\n".join(lines)


@contextlib.contextmanager
def one_line_errors(command: str) -> Iterator[None]:
    """Turn an exception that escapes a command into one line on stderr and ``sys.exit`` (see
    the module doc); SystemExit (tyro's --help, usage errors) passes through."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as e:
        if os.environ.get("LRM_STUDIO_DEBUG"):
            raise
        from pipelines.errors import InputError
        from pipelines.progress import Cancelled

        if isinstance(e, (Cancelled, KeyboardInterrupt)):
            print(f"lrm-studio {command}: cancelled", file=sys.stderr)
            sys.exit(130)
        if isinstance(e, (InputError, OSError)):
            text = str(e) or type(e).__name__
        else:
            text = f"{type(e).__name__}: {e} (a bug: set LRM_STUDIO_DEBUG=1 for its traceback and report it)"
        print(f"lrm-studio {command}: error: {text}", file=sys.stderr)
        sys.exit(1)


def _resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> None:
    import tyro

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv and "serve" in COMMANDS:
        argv = ["serve"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            target, help_ = COMMANDS[name]
            with one_line_errors(name):
                result = tyro.cli(
                    _resolve(target), args=argv[words:], prog=f"lrm-studio {name}", description=help_
                )
            if isinstance(result, int) and result != 0:
                sys.exit(result)
            return
    print(f"lrm-studio: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
