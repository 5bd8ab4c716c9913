"""The 3DGS trainer: gsplat's simple_trainer loop over :func:`pipelines.gaussians.render`, so the
same code runs on CUDA (gsplat kernels) and on the CPU (our numba backend).

One step (as simple_trainer orders it): next view of a per-epoch random permutation; the means'
learning rate set from the step; render at the SH degree of the step; loss 0.8 L1 + 0.2 (1 -
SSIM) (plus opacity and scale regularizers with MCMC); backward; the divergence guard; Adam
step on each parameter group; the strategy's post-backward (densify / prune / reset or MCMC
relocation and noise).

Divergence guard: a step whose loss is not finite or above ``config.max_loss``, or whose
gradients are not all finite, is skipped: no parameter update, the optimizer and strategy
state untouched, the step counted (``Trainer.skipped``, reported in run.json and the progress
message). ``config.max_skips_in_a_row`` skipped steps in a row raise
:class:`OptimizationDiverged`; checkpoints written before stay as they were.

Live: :meth:`Trainer.run` calls ``on_update(LiveUpdate)`` every ``live_every`` steps (mean loss
and step time since the last update; every ``snapshot_every`` steps also a CPU copy of the
Gaussians) and after each evaluation on
the test split (every ``eval_every`` steps; PSNR, SSIM, LPIPS when given); it waits while
``pause`` is set, ends early (keeping the result) when ``stop`` is set, and on a cancelled
token writes a checkpoint and raises :class:`~pipelines.progress.Cancelled`.

Checkpoints (:meth:`Trainer.state_dict`, written atomically by ``run`` every
``checkpoint_every`` steps and on cancel) hold the parameters, the Adam states, the strategy
state, the view order, the RNG state of the strategy's randomness, the step, the skipped steps,
the history and the config: :meth:`Trainer.from_state_dict` continues exactly where it stopped
(on the CPU the result is bit-identical to an uninterrupted run: the renderer's backward is
deterministic).

Examples:
    >>> trainer = Trainer(data, init_gaussians, preset("cpu-fast"), device="cpu")   # doctest: +SKIP
    >>> result = trainer.run(progress=report, checkpoint_path=run_dir / "checkpoint.pt")  # doctest: +SKIP
    >>> result.gaussians.num, result.final.summary()["psnr"]                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pipelines.errors import InputError
from pipelines.evaluation import EvalResult, evaluate
from pipelines.fileio import atomic_path
from pipelines.gaussians import Gaussians, render
from pipelines.metrics import LPIPS, ssim
from pipelines.optimize.config import OptimizeConfig
from pipelines.optimize.data import TrainingData
from pipelines.optimize.init import PARAM_NAMES, from_params, scene_scale, to_params
from pipelines.optimize.schedules import ExponentialDecay, ShDegreeSchedule, ViewOrder
from pipelines.optimize.strategy import DefaultStrategy, init_strategy_state, make_strategy
from pipelines.progress import Cancelled, CancelToken, Progress, no_progress

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "lrm-studio/3dgs-checkpoint"
CHECKPOINT_VERSION = 1


class OptimizationDiverged(RuntimeError):
    """Too many steps in a row had a non-finite or exploding loss (or non-finite gradients)."""


@dataclass(frozen=True)
class SkippedStep:
    step: int
    reason: str


@dataclass(frozen=True)
class LiveUpdate:
    """What the trainer reports while it runs.

    step: steps done; steps: the run's total. loss: mean loss of the steps since the previous
    update (None when all were skipped). step_time_s: mean wall time per step since then.
    gaussians: a detached CPU copy (world frame of the capture). test: the evaluation summary
    ({"psnr", "ssim", "lpips"}) when this update follows an evaluation, else None."""

    step: int
    steps: int
    loss: float | None
    step_time_s: float
    num_gaussians: int
    sh_degree: int
    skipped_steps: int
    gaussians: Gaussians | None = None
    test: dict[str, float | None] | None = None


@dataclass
class TrainResult:
    gaussians: Gaussians  # detached, CPU
    steps_done: int
    stopped_early: bool
    skipped: list[SkippedStep]
    final: EvalResult | None  # test split at the training resolution (None without test views)
    history: dict[str, list]
    timings: dict[str, float]


@dataclass
class _Window:
    """Losses and step times since the last live update."""

    losses: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def clear(self) -> None:
        self.losses.clear()
        self.times.clear()


def _total_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if get_total_norm is not None:
        return get_total_norm(grads, norm_type=2.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Trainer:
    """A 3DGS optimization of ``init`` Gaussians (world frame of ``data``'s cameras) on ``data``.

    device: where parameters, images and rendering live ("cuda..." -> gsplat kernels, "cpu" ->
    our numba backend). lpips: scored in evaluations when given. scene_scale: default gsplat's,
    from ``data.all_cameras``."""

    def __init__(
        self,
        data: TrainingData,
        init: Gaussians,
        config: OptimizeConfig,
        *,
        device: torch.device | str = "cpu",
        lpips: LPIPS | None = None,
        scene_scale: float | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.data = data.to(self.device)
        self.lpips = lpips
        self.scene_scale = float(scene_scale) if scene_scale is not None else _scene_scale(data)
        self.strategy = make_strategy(config, self.device)
        self.sh_schedule = ShDegreeSchedule(
            config.sh_degree_interval, config.sh_degree, start=config.sh_degree_start
        )
        self.means_lr = ExponentialDecay(
            config.lr.means * self.scene_scale, config.lr.means_final_ratio, config.steps
        )
        self.view_order = ViewOrder(len(self.data.train_cameras), config.seed)
        self.background = torch.tensor(config.background, dtype=torch.float32, device=self.device)
        g = init.with_sh_degree(config.sh_degree).to(self.device, torch.float32)
        self.params = to_params(g).to(self.device)
        self.optimizers = self._make_optimizers()
        self.strategy.check_sanity(self.params, self.optimizers)
        self.strategy_state = init_strategy_state(self.strategy, self.scene_scale)
        self.order_state = self.view_order.init_state()
        gen = torch.Generator().manual_seed(config.seed + 1)
        self.rng_cpu = gen.get_state()  # the strategies' torch.randn / multinomial draws
        self.rng_cuda = self._initial_cuda_rng(config.seed + 1)
        self.step = 0
        self.skipped: list[SkippedStep] = []
        self.skips_in_a_row = 0
        self.history: dict[str, list] = {"loss": [], "test": [], "num_gaussians": []}
        self.timings: dict[str, float] = {"train_s": 0.0, "eval_s": 0.0, "checkpoint_s": 0.0, "live_s": 0.0}

    # ------------------------------------------------------------------ setup
    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.lr
        rates = {
            "means": self.means_lr.at(0),
            "scales": lr.scales,
            "quats": lr.quats,
            "opacities": lr.opacities,
            "sh0": lr.sh0,
            "shN": lr.shN,
        }
        # Fused Adam: simple_trainer's choice on CUDA; on the CPU ~6x faster than the default
        # per-tensor loop for 20k Gaussians (one thread), and deterministic on both.
        return {
            name: torch.optim.Adam(
                [{"params": self.params[name], "lr": rates[name], "name": name}],
                eps=lr.eps,
                betas=(0.9, 0.999),
                fused=True,
            )
            for name in PARAM_NAMES
        }

    def _initial_cuda_rng(self, seed: int) -> torch.Tensor | None:
        if self.device.type != "cuda":
            return None
        with torch.random.fork_rng(devices=[self.device.index]):
            torch.cuda.manual_seed(seed)
            return torch.cuda.get_rng_state(self.device)

    @contextlib.contextmanager
    def _strategy_rng(self):
        """Run the strategy on the trainer's own RNG stream (saved in checkpoints), leaving the
        process's global RNG as it was."""
        devices = [self.device.index] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.rng_cpu)
            if self.rng_cuda is not None:
                torch.cuda.set_rng_state(self.rng_cuda, self.device)
            yield
            self.rng_cpu = torch.get_rng_state()
            if self.rng_cuda is not None:
                self.rng_cuda = torch.cuda.get_rng_state(self.device)

    # ----------------------------------------------------------------- access
    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def sh_degree(self, step: int | None = None) -> int:
        return self.sh_schedule.degree(self.step if step is None else step)

    def gaussians(self) -> Gaussians:
        """The current Gaussians, detached, on the CPU (a copy)."""
        with torch.no_grad():
            return from_params(self.params).detach().to("cpu").clone()

    # ------------------------------------------------------------------- step
    def train_step(self) -> float | None:
        """One optimization step; returns its loss, or None when the step was skipped."""
        cfg = self.config
        step = self.step
        idx, self.order_state = self.view_order.next(self.order_state)
        cam = self.data.train_cameras[idx]
        gt = self.data.train_images[idx : idx + 1]  # [1, H, W, 3]
        self.optimizers["means"].param_groups[0]["lr"] = self.means_lr.at(step)
        absgrad = isinstance(self.strategy, DefaultStrategy) and self.strategy.absgrad
        degree = self.sh_degree(step)
        # All SH bands go in (the unused ones get zero gradients), as in simple_trainer: Adam then
        # steps every group every step, and its bias correction matches gsplat's trainer.
        out = render(
            from_params(self.params),
            cam,
            sh_degree=degree,
            background=self.background,
            near_plane=cfg.near_plane,
            far_plane=cfg.far_plane,
            absgrad=absgrad,
            depth=False,  # not in the loss: gsplat rasterizes 3 channels, as simple_trainer's RGB mode
        )
        if isinstance(self.strategy, DefaultStrategy):
            self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, step, out.meta)
        l1 = (out.rgb - gt).abs().mean()
        ssim_loss = 1.0 - ssim(out.rgb.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)).mean()
        loss = torch.lerp(l1, ssim_loss, cfg.ssim_lambda)
        if cfg.strategy == "mcmc":
            loss = loss + cfg.mcmc.opacity_reg * torch.sigmoid(self.params["opacities"]).mean()
            loss = loss + cfg.mcmc.scale_reg * torch.exp(self.params["scales"]).mean()
        # The guard costs one device sync per step (simple_trainer syncs once for its progress
        # bar too): backward runs regardless; a bad step's gradients are dropped.
        loss.backward()
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        grad_norm = _total_grad_norm(grads) if grads else loss.new_zeros(())
        value, norm = torch.stack([loss.detach().float(), grad_norm.detach().float()]).tolist()
        reason = None
        if not math.isfinite(value):
            reason = "non-finite loss"
        elif value > cfg.max_loss:
            reason = f"loss {value:.3g} above max_loss {cfg.max_loss:g}"
        elif not math.isfinite(norm):
            reason = "non-finite gradients"
        if reason is not None:
            return self._skip(step, reason)
        self.skips_in_a_row = 0
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        with self._strategy_rng():
            if isinstance(self.strategy, DefaultStrategy):
                self.strategy.step_post_backward(
                    self.params, self.optimizers, self.strategy_state, step, out.meta, packed=False
                )
            else:  # simple_trainer passes the means' rate after its scheduler stepped
                self.strategy.step_post_backward(
                    self.params,
                    self.optimizers,
                    self.strategy_state,
                    step,
                    out.meta,
                    lr=self.means_lr.at(step + 1),
                )
        self.step += 1
        return value

    def _skip(self, step: int, reason: str) -> None:
        for p in self.params.values():
            p.grad = None
        self.skipped.append(SkippedStep(step, reason))
        self.skips_in_a_row += 1
        self.step += 1
        log.warning("step %d skipped: %s", step, reason)
        if self.skips_in_a_row >= self.config.max_skips_in_a_row:
            raise OptimizationDiverged(
                f"{self.skips_in_a_row} steps in a row skipped (last at step {step}: {reason}); the "
                "optimization diverged. Lower the learning rates, check the capture's images and cameras, "
                "or resume from the last checkpoint"
            )
        return None

    # ------------------------------------------------------------------- eval
    def evaluate(
        self, *, progress: Progress = no_progress, cancel: CancelToken | None = None
    ) -> EvalResult | None:
        """Scores on the test split at the training resolution (None without test views)."""
        if len(self.data.test_cameras) == 0:
            return None
        t0 = time.perf_counter()
        with torch.no_grad():
            result = evaluate(
                from_params(self.params).detach(),
                self.data.test_cameras,
                self.data.test_images,
                self.data.test_names,
                sh_degree=self.sh_degree(),
                background=self.background,
                lpips=self.lpips,
                near_plane=self.config.near_plane,
                far_plane=self.config.far_plane,
                progress=progress,
                cancel=cancel,
            )
        self.timings["eval_s"] += time.perf_counter() - t0
        s = result.summary()
        # [step, PSNR, SSIM, LPIPS, optimization seconds so far (steps only: no evaluation,
        # checkpoint or live-update time)]
        self.history["test"].append([self.step, s["psnr"], s["ssim"], s["lpips"], self.timings["train_s"]])
        return result

    # -------------------------------------------------------------------- run
    def run(
        self,
        *,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
        pause: threading.Event | None = None,
        stop: threading.Event | None = None,
        on_update: Callable[[LiveUpdate], None] | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_extra: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Train until ``config.steps`` (or ``stop`` is set), then evaluate on the test split.

        pause: while set, training waits (cancel and stop still work). stop: finish now and
        return the current Gaussians. cancel: write a checkpoint (when ``checkpoint_path``) and
        raise Cancelled. checkpoint_extra: stored in each checkpoint (e.g. how the run started).
        """
        cfg = self.config
        window = _Window()
        stopped = False
        last_snapshot = -1  # the step of the last update that carried the Gaussians

        def save() -> None:
            if checkpoint_path is not None:
                t0 = time.perf_counter()
                save_checkpoint(checkpoint_path, self.state_dict(checkpoint_extra))
                self.timings["checkpoint_s"] += time.perf_counter() - t0

        def report(test: dict | None = None, with_gaussians: bool = True) -> None:
            nonlocal last_snapshot
            n = self.num_gaussians
            loss = sum(window.losses) / len(window.losses) if window.losses else None
            dt = sum(window.times) / len(window.times) if window.times else 0.0
            if loss is not None and test is None:
                self.history["loss"].append([self.step, loss])
                self.history["num_gaussians"].append([self.step, n])
            if on_update is not None:
                t0 = time.perf_counter()
                if with_gaussians:
                    last_snapshot = self.step
                on_update(
                    LiveUpdate(
                        step=self.step,
                        steps=cfg.steps,
                        loss=loss,
                        step_time_s=dt,
                        num_gaussians=n,
                        sh_degree=self.sh_degree(),
                        skipped_steps=len(self.skipped),
                        gaussians=self.gaussians() if with_gaussians else None,
                        test=test,
                    )
                )
                self.timings["live_s"] += time.perf_counter() - t0
            if test is None:
                window.clear()

        last_psnr: float | None = None
        if on_update is not None:  # the starting point (init, or where a checkpoint left off)
            report()
            last_test = self.history["test"][-1] if self.history["test"] else None
            if last_test is not None and last_test[0] == self.step:  # evaluated here already
                last_psnr = last_test[1]
                report(
                    test={"psnr": last_test[1], "ssim": last_test[2], "lpips": last_test[3]},
                    with_gaussians=False,
                )
        try:
            while self.step < cfg.steps:
                if cancel is not None:
                    cancel.check()
                while pause is not None and pause.is_set() and not (stop is not None and stop.is_set()):
                    if cancel is not None:
                        cancel.check()
                    time.sleep(0.05)
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                t0 = time.perf_counter()
                loss = self.train_step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                dt = time.perf_counter() - t0
                self.timings["train_s"] += dt
                window.times.append(dt)
                if loss is not None:
                    window.losses.append(loss)
                s = self.step
                if cfg.live_every and s % cfg.live_every == 0:
                    report(with_gaussians=bool(cfg.snapshot_every) and s % cfg.snapshot_every == 0)
                if cfg.eval_every and s % cfg.eval_every == 0 and s < cfg.steps:
                    result = self.evaluate(cancel=cancel)
                    if result is not None:
                        last_psnr = result.summary()["psnr"]
                        report(test=result.summary(), with_gaussians=False)
                if cfg.checkpoint_every and s % cfg.checkpoint_every == 0 and s < cfg.steps:
                    save()
                progress(
                    s / cfg.steps,
                    _message(s, cfg.steps, loss, self.num_gaussians, last_psnr, len(self.skipped)),
                )
        except Cancelled:
            save()
            raise
        if window.times or (on_update is not None and last_snapshot != self.step):
            report()  # the last steps' loss and the final Gaussians
        final = self.evaluate(cancel=cancel)
        if final is not None:
            report(test=final.summary(), with_gaussians=False)
        return TrainResult(
            gaussians=self.gaussians(),
            steps_done=self.step,
            stopped_early=stopped,
            skipped=list(self.skipped),
            final=final,
            history=self.history,
            timings=dict(self.timings),
        )

    # ------------------------------------------------------------- checkpoint
    def state_dict(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything needed to continue (tensors on the CPU; loads with weights_only=True)."""

        def cpu(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.detach().cpu().clone()
            if isinstance(x, dict):
                return {k: cpu(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(cpu(v) for v in x)
            return x

        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "step": self.step,
            "scene_scale": self.scene_scale,
            "params": {k: cpu(v) for k, v in self.params.items()},
            "optimizers": {k: cpu(o.state_dict()) for k, o in self.optimizers.items()},
            "strategy_state": cpu(self.strategy_state),
            "order_state": cpu(self.order_state),
            "rng_cpu": cpu(self.rng_cpu),
            "rng_cuda": cpu(self.rng_cuda),
            "skipped": [[s.step, s.reason] for s in self.skipped],
            "skips_in_a_row": self.skips_in_a_row,
            "history": cpu(self.history),
            "timings": dict(self.timings),
            "extra": dict(extra or {}),
        }

    @staticmethod
    def from_state_dict(
        state: dict[str, Any],
        data: TrainingData,
        *,
        device: torch.device | str = "cpu",
        lpips: LPIPS | None = None,
    ) -> Trainer:
        """A trainer continuing from :meth:`state_dict` on the same ``data``."""
        config = OptimizeConfig.from_dict(state["config"])
        params = state["params"]
        init = from_params(params)
        t = Trainer(data, init, config, device=device, lpips=lpips, scene_scale=state["scene_scale"])
        for name, opt in t.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        dev = t.device

        def to_dev(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.to(dev)
            if isinstance(x, dict):
                return {k: to_dev(v) for k, v in x.items()}
            return x

        t.strategy_state = to_dev(state["strategy_state"])
        t.order_state = state["order_state"]
        t.rng_cpu = state["rng_cpu"]
        t.rng_cuda = state["rng_cuda"] if dev.type == "cuda" and state["rng_cuda"] is not None else t.rng_cuda
        t.step = int(state["step"])
        t.skipped = [SkippedStep(int(s), str(r)) for s, r in state["skipped"]]
        t.skips_in_a_row = int(state["skips_in_a_row"])
        t.history = {k: [list(x) for x in v] for k, v in state["history"].items()}
        t.timings.update(state["timings"])
        return t


def _scene_scale(data: TrainingData) -> float:
    return scene_scale(data.all_cameras if data.all_cameras is not None else data.train_cameras)


def _message(step: int, steps: int, loss: float | None, n: int, psnr: float | None, skipped: int) -> str:
    parts = [
        f"step {step}/{steps}",
        f"loss {loss:.4f}" if loss is not None else "step skipped",
        f"{n:,} Gaussians",
    ]
    if psnr is not None:
        parts.append(f"test PSNR {psnr:.2f} dB")
    if skipped:
        parts.append(f"{skipped} skipped")
    return ", ".join(parts)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


CHECKPOINT_KEYS = frozenset(
    {"config", "extra", "history", "optimizers", "order_state", "params", "rng_cpu", "rng_cuda",
     "scene_scale", "skipped", "skips_in_a_row", "step", "strategy_state", "timings"}
)  # fmt: skip


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (weights_only: no code runs);
    InputError for a file that is not one (unreadable, another format or version, keys missing)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as e:
        raise InputError(f"{path} cannot be read as a checkpoint ({str(e).splitlines()[0]})") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not an lrm-studio 3DGS checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise InputError(
            f"{path}: checkpoint version {state.get('version')}, this build reads {CHECKPOINT_VERSION}"
        )
    missing = sorted(CHECKPOINT_KEYS - set(state))
    if missing:
        raise InputError(f"{path}: not a complete checkpoint (no {', '.join(missing)}); start a new run")
    return state
