"""The feed-forward trainer: any registered model (through its adapter), one process or torchrun.

One step: every process prepares its share of the global batch (``data.StepSampler``), runs
the network and the losses inside the (DDP-wrapped) :class:`TrainStep` module, back-propagates
(DDP averages the gradients over ranks, so a step on N processes equals one process on the
whole batch), clips the global gradient norm, and updates with AdamW at the scheduled learning
rate. A step whose loss or gradient is not finite on any rank is skipped on all ranks and
counted (``skipped_nonfinite``); with ``skip_grad_factor`` a step whose gradient norm exceeds
that factor times the clip is skipped and counted too (``skipped_large``), as in Long-LRM.

State on disk, in ``out/``:

- ``checkpoints/step_XXXXXXXX.pt``: model, optimizer, step, counters, elapsed seconds and the
  config (``torch.save``, read back with ``weights_only=True``; the newest ``keep_checkpoints``
  are kept). A run started again on the same ``out`` resumes from the newest one and continues
  exactly: samples and per-step randomness are functions of (seeds, step, sample index), and the
  learning rate of the step count.
- ``log.jsonl``: one JSON object per logged step (losses, PSNR, lr, grad norm, counters, s/step)
  and per evaluation; ``config.json``; ``tb/`` with ``tensorboard=True`` (needs the tensorboard
  package).

Examples:
    >>> result = train(RECIPES["long-lrm-tiny"].with_(steps=20), Path("runs/t"))   # doctest: +SKIP
    >>> result.step, result.skipped_nonfinite                                      # doctest: +SKIP
    (20, 0)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipelines.fileio import atomic_path, write_json
from pipelines.models.checkpoints import TRAIN_SOURCE, check_keys, load_weights, save_weights
from pipelines.progress import CancelToken, Progress, check, no_progress
from pipelines.synth.stream import PRESETS as STREAMS
from pipelines.train import distributed as D
from pipelines.train.adapters import Adapter, Prepared, make_adapter, set_grad_checkpointing
from pipelines.train.config import TrainConfig
from pipelines.train.data import SceneSize, StepSampler, open_source
from pipelines.train.losses import LossWeights, compute_losses
from pipelines.train.perceptual import PerceptualLoss

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


# ------------------------------------------------------------------------------ schedule
def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps`` from 0, then cosine decay to ``min_lr_ratio`` at
    ``steps`` (``transformers.get_cosine_schedule_with_warmup`` for min_lr_ratio 0)."""
    if step < config.warmup_steps:
        return step / max(1, config.warmup_steps)
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cos


def param_groups(params: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on biases, 1-D tensors and parameters marked ``_no_weight_decay``
    (Mamba2's A_log, D, dt_bias), as the official optimizers."""
    decay, no_decay = [], []
    for name, p in params:
        if not p.requires_grad:
            continue
        if p.ndim < 2 or name.endswith(".bias") or getattr(p, "_no_weight_decay", False):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ------------------------------------------------------------------------------ one step
class TrainStep(nn.Module):
    """The network and the losses as one module, so that DDP wraps the whole forward.

    forward(batch, backgrounds [B, 3], generator) -> loss terms (``"total"`` included)."""

    def __init__(self, adapter: Adapter, weights: LossWeights, perceptual: PerceptualLoss | None) -> None:
        super().__init__()
        self.adapter = adapter
        self.model = adapter.model  # registered: DDP sees its parameters
        self.weights = weights
        self.perceptual = perceptual

    def forward(self, batch: list[Prepared], backgrounds: Tensor, generator: torch.Generator | None = None):
        pred = self.adapter.forward(batch, generator=generator)
        terms = compute_losses(pred, batch, self.weights, background=backgrounds, perceptual=self.perceptual)
        return terms, pred.info


def sample_background(config: TrainConfig, index: int) -> Tensor:
    """Background colour [3] of sample ``index`` (a function of the seed and the index)."""
    if config.background == "white":
        return torch.ones(3)
    if config.background == "black":
        return torch.zeros(3)
    return torch.rand(3, generator=torch.Generator().manual_seed(config.seed * 7_919 + index))


def step_generator(config: TrainConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(config.seed * 1_000_003 + step)


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_path(out: Path, step: int) -> Path:
    return Path(out) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((Path(out) / CHECKPOINT_DIR).glob("step_*.pt"))
    return found[-1] if found else None


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def export_weights(checkpoint: Path, out: Path, *, extra: dict[str, str] | None = None) -> Path:
    """Model weights of a training checkpoint -> safetensors with the metadata ``load()`` reads
    (``model``, ``preset``, ``config``, ``source``, ``steps``) and what it was trained on
    (``data``: "procedural" or the dataset folder's name)."""
    ck = load_checkpoint(checkpoint)
    data = json.loads(ck["config"]).get("data", "procedural") if ck.get("config") else "procedural"
    meta = {
        "model": ck["model_name"], "preset": ck["preset"], "source": TRAIN_SOURCE,
        "steps": str(ck["step"]), "data": "procedural" if data == "procedural" else Path(data).name,
        **({"config": ck["model_config"]} if ck.get("model_config") else {}), **(extra or {}),
    }  # fmt: skip
    save_weights(out, ck["model"], meta)
    return Path(out)


# ------------------------------------------------------------------------------ the loop
@dataclass
class TrainResult:
    out: Path
    step: int
    skipped_nonfinite: int
    skipped_large: int
    elapsed_s: float
    last: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


class _Prepare(torch.utils.data.Dataset):
    """source[i] -> adapter.prepare(...) (runs in the data workers)."""

    def __init__(self, source, adapter: Adapter) -> None:
        self.source, self.adapter = source, adapter

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, Prepared]:
        return index, self.adapter.prepare(self.source[index])


def _collate(items):
    return items


def _resolve_device(device: str, info_local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{info_local_rank}"
    return torch.device(device)


def train(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    source=None,
    device: str = "auto",
    resume: bool = True,
    stop_after: int | None = None,
    tensorboard: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train (or resume) into ``out``; returns where it stopped.

    source: a map-style sample source (default: ``open_source(config.data, ...)``); resume:
    continue from the newest checkpoint in ``out`` if any; stop_after: stop (and checkpoint)
    after this global step even if ``config.steps`` is larger (the schedule still spans
    ``config.steps``). Under torchrun every rank calls this; rank 0 writes the files."""
    out = Path(out)
    info = D.init("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else device)
    dev = _resolve_device(device, info.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    adapter = make_adapter(
        config.model, config.preset, seed=config.seed, prune_in_training=config.prune_in_training,
        stage=config.stage,
    )  # fmt: skip
    adapter.bf16 = config.bf16 and config.dtype == "float32"  # type: ignore[attr-defined]
    model = adapter.model
    if config.init:
        state, _ = load_weights(config.init)
        check_keys({k: tuple(v.shape) for k, v in model.state_dict().items()}, state, config.init)
        model.load_state_dict(state, strict=True)
    set_grad_checkpointing(model, config.grad_checkpointing)
    model.to(dev, dtype=getattr(torch, config.dtype)).train()
    perceptual = None
    if config.perceptual_weights:
        perceptual = PerceptualLoss.from_file(config.perceptual_weights).to(dev)
    step_module = TrainStep(adapter, config.losses, perceptual).to(dev)
    if info.enabled:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[dev.index] if dev.type == "cuda" else None, broadcast_buffers=False
        )
    named = [(n, p) for n, p in model.named_parameters()]
    optimizer = torch.optim.AdamW(param_groups(named, config.weight_decay), lr=config.lr, betas=config.betas)
    trainable = [p for _, p in named if p.requires_grad]

    start, counters, elapsed = 0, {"skipped_nonfinite": 0, "skipped_large": 0}, 0.0
    ck_path = latest_checkpoint(out) if resume else None
    if ck_path is not None:
        ck = load_checkpoint(ck_path)
        if (ck["model_name"], ck["preset"]) != (config.model, config.preset):
            raise ValueError(
                f"{ck_path} is a {ck['model_name']} / {ck['preset']} run; this config trains "
                f"{config.model} / {config.preset}: use another --out or --no-resume"
            )
        model.load_state_dict(ck["model"], strict=True)
        optimizer.load_state_dict(ck["optimizer"])
        start, elapsed = int(ck["step"]), float(ck.get("elapsed_s", 0.0))
        counters = {k: int(ck.get(k, 0)) for k in counters}
        if info.is_main:
            log.info("resuming %s from step %d (%s)", out, start, ck_path.name)

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", json.loads(config.to_json()))
    writer = _tensorboard(out / "tb") if (tensorboard and info.is_main) else None
    if source is None:
        source = open_source(
            config.data, stream=STREAMS[config.stream],
            size=SceneSize(config.scene_height, _multiple(adapter), config.square_crop),
            seed=config.data_seed,
            pool=config.pool, cache_dir=config.cache_dir,
        )  # fmt: skip
    sampler = StepSampler(batch=config.batch_size, rank=info.rank, world=info.world, start=start, steps=end)
    loader = torch.utils.data.DataLoader(
        _Prepare(source, adapter), batch_sampler=sampler, collate_fn=_collate, num_workers=config.num_workers,
        persistent_workers=False, prefetch_factor=2 if config.num_workers > 0 else None,
    )  # fmt: skip

    meta = {"model_name": config.model, "preset": config.preset, "config": config.to_json(),
            "model_config": _model_config_json(model), "world_size": info.world}  # fmt: skip
    last: dict[str, float] = {}
    step = start
    t_mark = time.perf_counter()
    t_last_log, steps_since_log = t_mark, 0
    log_f = open(out / "log.jsonl", "a") if info.is_main else None  # noqa: SIM115
    saved: Path | None = None
    try:
        for items in loader:
            check(cancel)
            indices = [i for i, _ in items]
            batch = [p for _, p in items]
            for g in optimizer.param_groups:
                g["lr"] = config.lr * lr_factor(step, config)
            bgs = torch.stack([sample_background(config, i) for i in indices]).to(dev)
            optimizer.zero_grad(set_to_none=True)
            terms, pinfo = step_module(batch, bgs, step_generator(config, step))
            loss = terms["total"]
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                trainable, config.grad_clip if config.grad_clip > 0 else float("inf")
            )
            finite = D.all_true(
                bool(torch.isfinite(loss).item() and torch.isfinite(grad_norm).item()), info, dev
            )
            if not finite:
                counters["skipped_nonfinite"] += 1
                optimizer.zero_grad(set_to_none=True)
                log.warning("step %d: non-finite loss or gradient; update skipped", step)
            elif (
                config.skip_grad_factor > 0 and float(grad_norm) > config.skip_grad_factor * config.grad_clip
            ):
                counters["skipped_large"] += 1
                optimizer.zero_grad(set_to_none=True)
            else:
                optimizer.step()
            step += 1
            steps_since_log += 1
            now = time.perf_counter()
            elapsed += now - t_mark
            t_mark = now
            values = {k: float(v.detach()) for k, v in terms.items()} | dict(pinfo)
            last = D.mean_over_ranks(values, info, dev)
            if info.is_main and (step % config.log_every == 0 or step == end):
                row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                       **last, **counters, "s_per_step": (now - t_last_log) / steps_since_log,
                       "elapsed_s": elapsed, "samples": step * config.batch_size * info.world}  # fmt: skip
                _write_row(log_f, writer, row, step)
                t_last_log, steps_since_log = now, 0
            if config.eval_every and step % config.eval_every == 0 and info.is_main:
                row = _evaluate(adapter, config, dev)
                _write_row(log_f, writer, {"step": step, "eval": row}, step)
                t_mark = time.perf_counter()  # evaluation time is not training time
            if step % config.checkpoint_every == 0 or step == end:
                saved = _checkpoint(
                    out, step, model, optimizer, meta | counters | {"elapsed_s": elapsed}, config, info
                )
            progress(step / max(1, end), f"step {step}/{end} loss {last.get('total', float('nan')):.4f}")
            if (
                config.max_minutes is not None
                and step < end
                and not D.all_true(elapsed < 60 * config.max_minutes, info, dev)
            ):  # every rank stops at the same step
                if info.is_main:
                    log.info(
                        "step %d: %.1f min of training reached (max_minutes); stopping", step, elapsed / 60
                    )
                break
    finally:
        if log_f is not None:
            log_f.close()
        if writer is not None:
            writer.close()
    if step > start and (saved is None or saved != checkpoint_path(out, step)):
        saved = _checkpoint(
            out, step, model, optimizer, meta | counters | {"elapsed_s": elapsed}, config, info
        )
    return TrainResult(out, step, counters["skipped_nonfinite"], counters["skipped_large"], elapsed, last,
                       saved or latest_checkpoint(out))  # fmt: skip


def _multiple(adapter: Adapter) -> int:
    c = getattr(adapter.model, "config", None)
    return int(getattr(c, "patch_size_out", getattr(c, "patch_size", 16)))


def _model_config_json(model: nn.Module) -> str:
    c = getattr(model, "config", getattr(model, "cfg", None))
    return c.to_json() if c is not None and hasattr(c, "to_json") else ""


def _checkpoint(out, step, model, optimizer, state, config: TrainConfig, info: D.DistInfo) -> Path:
    path = checkpoint_path(out, step)
    if info.is_main:
        save_checkpoint(path, model, optimizer, {"step": step, **state})
        old = sorted((Path(out) / CHECKPOINT_DIR).glob("step_*.pt"))[: -config.keep_checkpoints]
        for p in old:
            p.unlink(missing_ok=True)
    D.barrier(info)
    return path


def _write_row(f, writer, row: dict, step: int) -> None:
    f.write(json.dumps(row) + "\n")
    f.flush()
    if writer is not None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "step":
                writer.add_scalar(f"train/{k}", v, step)
            elif isinstance(v, dict):
                for k2, v2 in v.items():
                    if isinstance(v2, (int, float)):
                        writer.add_scalar(f"{k}/{k2}", v2, step)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package (pip install tensorboard); "
            "the jsonl log is always written"
        ) from e
    return SummaryWriter(str(path))


def _evaluate(adapter: Adapter, config: TrainConfig, dev: torch.device) -> dict[str, float]:
    from pipelines.train.evaluate import evaluate_procedural, reconstructor_for

    rec = reconstructor_for(adapter, dev)
    try:
        res = evaluate_procedural(
            rec, STREAMS[config.stream], seed=config.eval_seed, count=config.eval_examples
        )
    finally:
        adapter.model.train()
    return {"procedural_psnr": res.model_psnr, "mean_colour_psnr": res.baselines["mean_colour"],
            "reprojection_psnr": res.baselines["reprojection"]}  # fmt: skip
