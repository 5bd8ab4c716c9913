"""Kernel backends timed side by side in one benchmark run.

``lrm-studio bench long-lrm --backend torch,triton,mamba_ssm`` (the Mamba2 scan) and ``bench
geolrm --deform-backend torch,triton`` (the deformable cross-attention) run every case once per
backend and print the medians next to each other with the speed-up over the PyTorch path. A
backend named but unable to run on the device (mamba-ssm not installed; our Triton kernels off
CUDA, where Triton has only its slow interpreter) is reported as skipped, not an error; ``all``
means every backend the device can run.

Examples:
    >>> parse_backends("torch,triton", ("auto", "torch", "triton"), lambda b: None)
    (['torch', 'triton'], {})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

SCAN_BACKENDS = ("auto", "torch", "triton", "mamba_ssm")
DEFORM_BACKENDS = ("auto", "torch", "triton")


def parse_backends(
    spec: str, known: Sequence[str], why_not: Callable[[str], str | None]
) -> tuple[list[str], dict[str, str]]:
    """``"torch,triton"`` -> (backends to run, in order; {backend: why it cannot run here}).
    ``"all"`` lists every known backend but "auto". Unknown names exit with the known ones."""
    if spec.strip() == "all":
        names = [n for n in known if n != "auto"]
    else:
        names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown backend(s) {unknown or spec!r}; choose from {', '.join(known)} or 'all'")
    skipped = {n: r for n in names if (r := why_not(n)) is not None}
    return [n for n in names if n not in skipped], skipped


def _triton_why_not(device: torch.device | str) -> str | None:
    from pipelines.models.blocks.kernels import triton_installed

    if torch.device(device).type != "cuda":
        return "our Triton kernels are timed on CUDA only (the CPU has Triton's interpreter, for tests)"
    return None if triton_installed() else "triton is not installed"


def scan_why_not(backend: str, device: torch.device | str) -> str | None:
    """Why the Mamba2 scan ``backend`` cannot run on ``device`` (None: it can)."""
    from pipelines.models.blocks.mamba2 import mamba_ssm_available

    if backend == "triton":
        return _triton_why_not(device)
    if backend == "mamba_ssm" and not mamba_ssm_available(device):
        return "mamba-ssm is not installed (or the device is not CUDA)"
    return None


def deform_why_not(backend: str, device: torch.device | str) -> str | None:
    """Why the deformable-attention ``backend`` cannot run on ``device`` (None: it can)."""
    return _triton_why_not(device) if backend == "triton" else None


def side_by_side(
    rows: list[dict], backends: list[str], *, backend_key: str, time_key: str = "median_s"
) -> tuple[list[str], list[list]]:
    """Columns and rows of a views x backend table of ``time_key`` (rows without a time, e.g.
    skipped cases, leave a blank), plus the speed-up of each other backend over "torch"."""
    cols = ["views"] + [f"{b} s" for b in backends]
    others = [b for b in backends if b != "torch"] if "torch" in backends else []
    cols += [f"torch / {b}" for b in others]
    table = []
    for v in dict.fromkeys(r["views"] for r in rows):
        t = {r[backend_key]: r.get(time_key) for r in rows if r["views"] == v and backend_key in r}
        line: list = [v] + [t.get(b, "") if t.get(b) is not None else "" for b in backends]
        for b in others:
            ok = t.get("torch") and t.get(b)
            line.append(f"{t['torch'] / t[b]:.2f}x" if ok else "")
        table.append(line)
    return cols, table


def print_unavailable(unavailable: dict[str, str]) -> None:
    """Backends asked for that cannot run here, and why."""
    from studio.console import console

    for b, why in unavailable.items():
        console.print(f"[yellow]backend {b} skipped:[/yellow] {why}")
