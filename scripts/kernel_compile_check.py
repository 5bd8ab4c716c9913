"""Compile every launch of our Triton kernels for an NVIDIA GPU without one, and report registers
and spills (``python scripts/kernel_compile_check.py [--arch 90]``).

The host code of pipelines/models/blocks/kernels/ runs forward and backward at Long-LRM's sizes
(widths 256 and 1024, d_state 256, headdim 64, chunk 256; float32 and bfloat16, both scan
directions), at GeoLRM's (16 heads x 48 channels, 2 levels x 8 points, 6 and 21 views) and at
the tests' tiny sizes, on CPU tensors, with every kernel launch replaced by a compile:
``triton.compile`` of the launch's signature for ``cuda:<arch>`` down to PTX, then the ptxas that
ships with triton (``-v``) for the register and spill counts. The outputs are never computed
(the buffers stay uninitialised): this checks that the kernels compile for the GPU and how they
use registers; correctness is the tests' job. Uses triton internals (``ASTSource``,
``GPUTarget``), as of triton 3.9. Exit status 1 if any launch fails to compile.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compile, not interpret
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

MODULES = ("conv_norm", "ssd_scan", "ssd_scan_bwd", "deform_attn")
POINTER = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.int32: "*i32"}


def _ptxas_report(ptx: str, arch: int) -> str:
    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    ptxas = next((p for p in (bin_dir / "ptxas-blackwell", bin_dir / "ptxas") if p.exists()), None)
    if ptxas is None:
        return "(no ptxas)"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    r = subprocess.run([str(ptxas), "-v", f"--gpu-name=sm_{arch}a", f.name, "-o", os.devnull],
                       capture_output=True, text=True)  # fmt: skip
    os.unlink(f.name)
    lines = [ln.split("info    : ")[-1] for ln in r.stderr.splitlines() if "Used" in ln or "spill" in ln]
    return " | ".join(lines) if r.returncode == 0 else r.stderr.strip()[-300:]


class CompileOnly:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args)`` compiles that signature."""

    results: dict[tuple, str] = {}

    def __init__(self, fn, name: str, arch: int) -> None:
        self.fn, self.name, self.arch = fn, name, arch

    def __getitem__(self, grid):
        def launch(*args, num_warps: int = 4, **kwargs):
            values = dict(zip(self.fn.arg_names, args, strict=False)) | kwargs
            sig, consts = {}, {}
            for p in self.fn.params:
                v = values[p.name]
                if p.is_constexpr:
                    sig[p.name], consts[p.name] = "constexpr", v
                elif isinstance(v, torch.Tensor):
                    sig[p.name] = POINTER[v.dtype]
                elif isinstance(v, bool):
                    sig[p.name] = "i1"
                elif isinstance(v, int):
                    sig[p.name] = "i64" if abs(v) >= 2**31 else "i32"
                else:
                    sig[p.name] = "fp32"
            key = (self.name, tuple(sig.items()), tuple((k, str(v)) for k, v in consts.items()), num_warps)
            if key in self.results:
                return
            try:
                k = triton.compile(
                    ASTSource(self.fn, sig, consts), target=GPUTarget("cuda", self.arch, 32),
                    options={"num_warps": num_warps},
                )  # fmt: skip
                self.results[key] = "ok   " + _ptxas_report(k.asm["ptx"], self.arch)
            except Exception as e:  # a compile error is the finding
                self.results[key] = f"FAIL {e!r}"[:2000]
            print(f"{self.name} {consts} warps={num_warps}: {self.results[key]}", flush=True)

        return launch


def patch_kernels(arch: int) -> None:
    for m in MODULES:
        mod = importlib.import_module(f"pipelines.models.blocks.kernels.{m}")
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, triton.runtime.jit.JITFunction) and name.endswith("_kernel"):
                setattr(mod, name, CompileOnly(obj, name, arch))
    bwd = importlib.import_module("pipelines.models.blocks.kernels.ssd_scan_bwd")
    bwd._chunk_state_kernel = importlib.import_module(
        "pipelines.models.blocks.kernels.ssd_scan"
    )._chunk_state_kernel


def run_scan(d: int, L: int, dtype: torch.dtype, reverse: bool, *, P=64, N=256, G=1, W=4, chunk=256) -> None:
    from pipelines.models.blocks.kernels.mamba_split_scan import mamba_split_conv1d_scan_triton

    H = 2 * d // P
    di = H * P
    zx = torch.randn(1, L, 2 * di + 2 * G * N + H).to(dtype).requires_grad_()
    params = [torch.randn(di + 2 * G * N, W), torch.randn(di + 2 * G * N), torch.randn(H), -torch.rand(H),
              torch.randn(H), torch.rand(di)]  # fmt: skip
    params = [p.requires_grad_() for p in params]
    out = mamba_split_conv1d_scan_triton(
        zx, *params, headdim=P, ngroups=G, chunk_size=chunk, norm_eps=1e-5, dt_limit=(0.0, float("inf")),
        reverse=reverse,
    )  # fmt: skip
    out.float().sum().backward()


def run_deform(
    V: int, Q: int, H: int, Dh: int, shapes: list[tuple[int, int]], P: int, dtype: torch.dtype
) -> None:
    from pipelines.models.blocks.kernels.deform_attn import multiview_deform_attn_triton

    S = sum(h * w for h, w in shapes)
    nl = len(shapes)
    ins = [torch.randn(1, V, S, H * Dh).to(dtype), torch.rand(1, V, Q, 2), torch.rand(1, Q, H, nl, P, 2),
           torch.rand(1, Q, H, nl, P), torch.randn(H * Dh), torch.zeros(1)]  # fmt: skip
    ins = [t.requires_grad_() for t in ins]
    multiview_deform_attn_triton(ins[0], tuple(shapes), *ins[1:]).sum().backward()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200), 80 (A100)")
    arch = ap.parse_args().arch
    patch_kernels(arch)
    for dtype in (torch.float32, torch.bfloat16):
        for reverse in (False, True):
            run_scan(256, 300, dtype, reverse)
    run_scan(1024, 300, torch.bfloat16, False)
    run_scan(8, 37, torch.float32, False, P=8, N=8, G=2, W=3, chunk=16)  # the tests' sizes
    for dtype in (torch.float32, torch.bfloat16):
        run_deform(21, 64, 16, 48, [(32, 32), (16, 16)], 8, dtype)
    run_deform(6, 64, 16, 48, [(32, 32), (16, 16)], 8, torch.float32)
    run_deform(3, 9, 2, 3, [(5, 4), (3, 2)], 2, torch.float32)
    failed = [k for k, v in CompileOnly.results.items() if v.startswith("FAIL")]
    print(f"{len(CompileOnly.results)} kernel specialisations compiled for sm_{arch}, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
