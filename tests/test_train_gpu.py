"""Trainer on CUDA: bf16 autocast + gradient checkpointing train the tiny Long-LRM (loss falls,
no skipped steps), checkpointing leaves the gradients unchanged, GeoLRM's two stages train under
bf16 (gsplat renders stage 2), and a 2-process NCCL step equals one process on the whole batch
(needs 2 GPUs). Run by scripts/gpu_checks.sh."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.multiprocessing as mp

from pipelines.train.adapters import make_adapter, set_grad_checkpointing
from pipelines.train.losses import LossWeights
from pipelines.train.trainer import TrainStep, latest_checkpoint, load_checkpoint, train
from tests.test_train import FixedSource, small_config

pytestmark = pytest.mark.gpu


def test_bf16_training_lowers_the_loss(tmp_path, seed):
    src = FixedSource(2, seed)
    cfg = small_config(steps=30, lr=2e-3, bf16=True, grad_checkpointing=True, preset="tiny-demo", log_every=1)
    res = train(cfg, tmp_path, source=src, device="cuda")
    assert res.step == 30 and res.skipped_nonfinite == 0
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    rows = [r for r in map(json.loads, lines) if "mse" in r]
    first, last = rows[0]["mse"], min(r["mse"] for r in rows[-5:])
    assert last < 0.7 * first, (first, last)


def test_gradient_checkpointing_keeps_gradients(seed):
    src = FixedSource(1, seed)
    grads = []
    for ckpt in (False, True):
        ad = make_adapter("long-lrm", "tiny", seed=seed % 1000)
        set_grad_checkpointing(ad.model, ckpt)
        ad.model.cuda().train()
        step = TrainStep(ad, LossWeights(mse=1.0, opacity=0.1, depth=0.0), None)
        terms, _ = step([ad.prepare(src[0])], torch.ones(1, 3, device="cuda"))
        terms["total"].backward()
        grads.append([p.grad.float().clone() for p in ad.model.parameters() if p.grad is not None])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-2)  # bf16 recomputation


@pytest.mark.parametrize("stage", ["proposal", "reconstruction"])
def test_geolrm_stages_train_under_bf16(tmp_path, stage, seed):
    from pipelines.train.config import RECIPES
    from tests.test_train_geolrm import OBJECTS

    base = RECIPES["geolrm-tiny-demo-proposal" if stage == "proposal" else "geolrm-tiny-demo"]
    cfg = base.with_(steps=40, warmup_steps=1, lr=2e-3, log_every=1, eval_every=0, checkpoint_every=1000,
                     bf16=True, threads=None, seed=seed % 1000)  # fmt: skip
    res = train(cfg, tmp_path, source=FixedSource(2, seed, OBJECTS), device="cuda")
    assert res.step == 40 and res.skipped_nonfinite == 0
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first, last = rows[0]["total"], min(r["total"] for r in rows[-5:])
    assert last < 0.85 * first, (first, last)


def _nccl_worker(rank, world, init_file, out, seed):
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = small_config(steps=2, batch_size=1, bf16=False, seed=seed % 1000)
        train(cfg, out, source=FixedSource(4, seed), device="cuda")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_nccl_two_processes_equal_one_process(tmp_path, seed):
    mp.spawn(_nccl_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), seed), nprocs=2, join=True)
    cfg = small_config(steps=2, batch_size=2, bf16=False, seed=seed % 1000)
    train(cfg, tmp_path / "single", source=FixedSource(4, seed), device="cuda")
    a = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))["model"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "single"))["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-3, msg=k)
