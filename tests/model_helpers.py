"""Helpers shared by the feed-forward model tests (Long-LRM, tttLRM): a small capture on disk,
`lrm-studio reconstruct` arguments, the official-import round trip and the refusals of bad
checkpoints, and the CUDA-bf16-against-CPU-float32 comparison. Each helper asserts."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import write_image
from pipelines.models.base import load_model
from pipelines.models.checkpoints import WeightsError, load_weights, save_weights
from studio.cli import main as cli


# ------------------------------------------------------------------ captures and the CLI
def make_capture(root, gen, n=12, width=96, height=54):
    ang = torch.linspace(0, 2.0, n)
    eye = torch.stack([2 * torch.sin(ang), 0.2 * torch.randn(n, generator=gen), -2 * torch.cos(ang)], -1)
    cams = Cameras.look_at(eye, torch.zeros(n, 3), fov_y_deg=60, width=width, height=height)
    paths = []
    for i in range(n):
        p = f"images/{i:06d}.png"
        write_image(root / p, torch.rand(3, height, width, generator=gen))
        paths.append(p)
    cap = Capture(root=root, file_paths=paths, cameras=cams, splits=default_splits(n))
    cap.save()
    return cap


def reconstruct_argv(root: Path, model: str, preset: str, *extra: str) -> list[str]:
    """`lrm-studio reconstruct ROOT --model MODEL --preset PRESET --device cpu EXTRA...`"""
    return ["reconstruct", str(root), "--model", model, "--preset", preset, "--device", "cpu", *extra]


# ------------------------------------------------------------------ official checkpoints
def assert_import_round_trip(
    tmp_path: Path, caplog, *, model: str, preset: str, ckpt: Path, sd: dict[str, torch.Tensor],
    map_key: Callable[[str], str | None], dropped: tuple[str, ...], bare_config,
):  # fmt: skip
    """`lrm-studio weights import MODEL CKPT --preset PRESET` logs the ``dropped`` training-only
    roots and writes every tensor of ``sd`` under its mapped key; `load_model` from that file
    (preset from the metadata) holds them, and from a copy without metadata recognises
    ``bare_config`` from the shapes. Returns the reconstructor loaded with metadata."""
    out = tmp_path / "tiny.safetensors"
    with caplog.at_level("INFO"):
        assert cli(["weights", "import", model, str(ckpt), "--out", str(out), "--preset", preset]) is None
    assert any(all(root in r.message for root in dropped) for r in caplog.records)
    state, meta = load_weights(out)
    assert meta["model"] == model and meta["preset"] == preset
    assert len(state) == len(sd)
    for k, v in sd.items():
        assert torch.equal(state[map_key(k)], v), k
    rec = load_model(model, weights=out, device="cpu")  # preset from the metadata
    model_sd = rec.model.state_dict()
    for k, v in sd.items():
        assert torch.equal(model_sd[map_key(k)], v), k
    bare = tmp_path / "bare.safetensors"  # no metadata: the layout is recognised from the shapes
    save_weights(bare, state, {})
    assert load_model(model, weights=bare, device="cpu").config == bare_config
    return rec


def assert_mismatch_named(
    import_official: Callable, ckpt: Path, preset: str, *, missing: str, unexpected: tuple[str, ...],
    misshaped: str,
) -> None:  # fmt: skip
    """Importing ``ckpt`` fails with one message that names the one missing key, every
    unexpected key and the mis-shaped key (``misshaped``: "KEY (shape) (expected (shape))")."""
    with pytest.raises(WeightsError) as e:
        import_official(ckpt, preset=preset)
    msg = str(e.value)
    assert f"missing 1 keys: {missing}" in msg
    assert all(k in msg for k in unexpected), (unexpected, msg)
    assert misshaped in msg


class _Evil:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def assert_bad_checkpoints_refused(
    import_official: Callable, good: Path, tmp_path: Path, preset: str
) -> Path:
    """A truncated copy of ``good`` is refused as corrupted, and a pickle whose loading would run
    code is refused without running it. Returns the truncated file."""
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupted, truncated"):
        import_official(truncated, preset=preset)
    # an object whose unpickling would run code: refused by weights_only=True, never executed
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": _Evil(tmp_path / "pwned")}, f, protocol=2)
    with pytest.raises(WeightsError, match="execute code"):
        import_official(tmp_path / "evil.pt", preset=preset)
    assert not (tmp_path / "pwned").exists()
    return truncated


def assert_cli_import_fails(model: str, ckpt: Path, tmp_path: Path, preset: str) -> None:
    """`lrm-studio weights import` of a bad checkpoint reports the error, exits 1, writes nothing."""
    out = tmp_path / "x.safetensors"
    with pytest.raises(SystemExit) as e:
        cli(["weights", "import", model, str(ckpt), "--out", str(out), "--preset", preset])
    assert e.value.code == 1 and not out.exists()


# ------------------------------------------------------------------ CUDA
def rel_err(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def bf16_errors(model: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """Relative errors of ``model(*args).raw`` under bf16 autocast against float32 on the CPU:
    (CUDA bf16, CPU bf16). The CPU bf16 error is the rounding noise that bf16 itself brings (for a
    random-init tiny network about 2e-2), the yardstick for the CUDA error; the model is on CUDA
    afterwards."""
    with torch.inference_mode():
        ref = model(*args).raw
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cpu_bf16 = model(*args).raw.float()
        model.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            cuda_bf16 = model(*(a.cuda() for a in args)).raw.float().cpu()
    return rel_err(cuda_bf16, ref), rel_err(cpu_bf16, ref)
