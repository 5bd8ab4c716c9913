"""The tttLRM network: 12-channel ray + RGB patch tokens -> blocks of [per-view attention,
fast-weight layer over all views, MLP] -> one Gaussian per pixel of the query (virtual) views.

Works in the normalised frame of :mod:`.preprocess`; holds no preprocessing, loss, rendering,
timing or pruning policy. Two ways to run it:

- offline, :meth:`TTTLRM.forward`: input views and optional virtual views in one sequence
  ``[input | virtual]`` under a schedule (:mod:`pipelines.models.blocks.fast_weight`): "full"
  (one update over all input tokens: the official full model), "ar" (the official AR op:
  sequential updates every ``update_views`` views, final weights applied to every token) or
  "causal" (what streaming computes). Without virtual views the virtual views are the input
  views themselves (the released configs, ``fixed_virtual`` with as many virtual as input views);
  then, under "full" and "ar", every virtual token equals its input token in every layer (same
  tokenizer input, same per-view attention, same final weights, same MLP), so the network runs
  the input tokens once and decodes them: the same result for half the tokens.
- streaming, :meth:`TTTLRM.absorb` / :meth:`TTTLRM.decode`: the per-layer fast weights are the
  state (:class:`StreamState`); ``absorb`` runs one chunk of views through the blocks, each
  layer updating its weights on the chunk's tokens and applying them to the chunk (the "causal"
  schedule, so absorbing a chunk costs the same however many came before); ``decode`` runs
  query views through the blocks reading the current weights and returns their Gaussians.

Equivalences (tested): one absorb of all views + decode == forward(schedule="full") with the
views as virtual views; chunk-by-chunk absorbs + decode == forward(schedule="causal"). The
official "ar" op is not causal across layers (layer l + 1 reads features of early views made
with layer l's *final* weights), so it matches streaming only in the first layer's weights.

Examples:
    >>> from pipelines.models.ttt_lrm.config import PRESETS
    >>> net = TTTLRM(PRESETS["tiny"])
    >>> imgs = torch.rand(1, 2, 3, 64, 112)
    >>> c2w = torch.eye(4).expand(1, 2, 4, 4)
    >>> K = torch.tensor([[60.0, 0, 56], [0, 60, 32], [0, 0, 1]]).expand(1, 2, 3, 3)
    >>> net(imgs, c2w, K).raw.shape                      # one Gaussian per pixel, 59 channels
    torch.Size([1, 14336, 59])
    >>> state = net.absorb(net.initial_state(1), imgs, c2w, K)
    >>> state.views, net.decode(state, imgs[:, :1], c2w[:, :1], K[:, :1]).raw.shape
    (2, torch.Size([1, 7168, 59]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipelines.models.blocks.attention import Mlp, SelfAttention
from pipelines.models.blocks.checkpointing import checkpointed
from pipelines.models.blocks.fast_weight import (
    FastWeightGLU,
    FastWeights,
    TTTOp,
    ar_ops,
    causal_ops,
    full_ops,
)
from pipelines.models.blocks.gaussian_head import PixelGaussianHead, PixelGaussians
from pipelines.models.blocks.plucker import PluckerTokenizer
from pipelines.models.blocks.weight_init import init_normal
from pipelines.models.ttt_lrm.config import Schedule, TTTLRMConfig
from pipelines.progress import CancelToken, Progress, check, no_progress


class TTTBlock(nn.Module):
    """Pre-norm residual block: per-view attention, fast-weight layer across views, MLP.
    Official names: ``module_list.{0,1,2}.{ln,f}`` (see weights.py)."""

    def __init__(self, c: TTTLRMConfig) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(c.dim, bias=False)
        self.attn = SelfAttention(c.dim, c.attn_head_dim, qk_norm=True)
        self.ttt_norm = nn.LayerNorm(c.dim, bias=False)
        self.ttt = FastWeightGLU(
            c.dim, c.ttt_head_dim, c.ttt_inter_multi, base_lr=c.base_lr, muon_steps=c.muon_steps,
            token_block=c.token_block,
        )  # fmt: skip
        self.mlp_norm = nn.LayerNorm(c.dim, bias=False)
        self.mlp = Mlp(c.dim, c.mlp_ratio)

    def forward(
        self, x: Tensor, *, tokens_per_view: int, ops: list[TTTOp], state: FastWeights | None = None
    ) -> tuple[Tensor, FastWeights]:
        """x [B, V*n, D] (n = tokens_per_view) -> (x [B, V*n, D], fast weights after ``ops``)."""
        b, L, d = x.shape
        assert L % tokens_per_view == 0, f"{L} tokens are not whole views of {tokens_per_view}"
        per_view = self.attn_norm(x).reshape(b * (L // tokens_per_view), tokens_per_view, d)  # [B*V, n, D]
        x = x + self.attn(per_view).reshape(b, L, d)
        y, state = self.ttt(self.ttt_norm(x), ops, state)
        assert y.shape == x.shape, (
            f"the schedule must apply to every token: {tuple(y.shape)} vs {tuple(x.shape)}"
        )
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state


@dataclass
class StreamState:
    """Streaming state: the fast weights of every layer after ``views`` absorbed views."""

    layers: list[FastWeights]
    views: int = 0

    @property
    def num_elements(self) -> int:
        return sum(w.num_elements for w in self.layers)


class TTTLRM(nn.Module):
    def __init__(self, config: TTTLRMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.grad_checkpointing = False  # per-block activation checkpointing (training)
        self.tokenizer = PluckerTokenizer(c.patch_size, c.dim, layout="ttt-lrm")
        self.input_norm = nn.LayerNorm(c.dim, bias=False)
        self.blocks = nn.ModuleList([TTTBlock(c) for _ in range(c.num_layers)])
        self.head = PixelGaussianHead(c.dim, c.patch_size, c.activation.num_channels)
        for module in (self.tokenizer, self.blocks, self.head):
            module.apply(init_normal)  # official _init_weights (fast weights keep theirs)

    # ------------------------------------------------------------------ pieces
    def tokenize(self, images: Tensor, c2w: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """images [B, V, 3, H, W] in [0, 1], c2w [B, V, 4, 4] OpenCV (normalised frame), K [B, V, 3, 3]
        -> tokens [B, V*n, D] (normalised), ray_o, ray_d [B, V*H*W, 3]."""
        c = self.config
        H, W = images.shape[-2:]
        assert H % c.patch_size == 0 and W % c.patch_size == 0, (
            f"image {W}x{H}: sides must be multiples of {c.patch_size} (use preprocess.prepare)"
        )
        tokens, ray_o, ray_d = self.tokenizer(images, c2w, K)
        return self.input_norm(tokens), ray_o, ray_d

    def _blocks(
        self,
        x: Tensor,
        ops: list[TTTOp],
        states: list[FastWeights] | None,
        *,
        tokens_per_view: int,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> tuple[Tensor, list[FastWeights]]:
        out_states = []
        for i, block in enumerate(self.blocks):
            check(cancel)
            state = None if states is None else states[i]
            x, state = checkpointed(
                self.grad_checkpointing, block, x, tokens_per_view=tokens_per_view, ops=ops, state=state
            )
            out_states.append(state)
            progress((i + 1) / len(self.blocks), f"block {i + 1}/{len(self.blocks)}")
        return x, out_states

    def _decode(
        self, tokens: Tensor, ray_o: Tensor, ray_d: Tensor, views: int, H: int, W: int
    ) -> PixelGaussians:
        p = self.config.patch_size
        raw = self.head(tokens, views=views, h=H // p, w=W // p)  # [B, V*H*W, C]
        return PixelGaussians(raw, ray_o, ray_d, self.config.activation)

    # ------------------------------------------------------------------ offline
    def forward(
        self,
        images: Tensor,
        c2w: Tensor,
        K: Tensor,
        *,
        virtual: tuple[Tensor, Tensor, Tensor] | None = None,
        schedule: Schedule | None = None,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> PixelGaussians:
        """Input views (images [B, V, 3, H, W] in [0, 1], c2w [B, V, 4, 4], K [B, V, 3, 3]) -> the
        raw Gaussians of the virtual views (images, c2w, K of the same layout; None: the input
        views) under ``schedule`` (default: the config's). ``progress`` is told after each block."""
        schedule = schedule or self.config.schedule
        b, v, _, H, W = images.shape
        tokens, ray_o, ray_d = self.tokenize(images, c2w, K)  # [B, V*n, D]
        n = tokens.shape[1] // v
        if virtual is None and schedule in ("full", "ar"):
            # the virtual tokens would equal the input tokens in every layer: run them once
            ops = _ops(schedule, v, v, n, self.config.update_views)
            x, _ = self._blocks(tokens, ops, None, tokens_per_view=n, progress=progress, cancel=cancel)
            return self._decode(x, ray_o, ray_d, v, H, W)
        if virtual is None:
            virtual = (images, c2w, K)
        vt, vo, vd = self.tokenize(*virtual)
        vv = virtual[0].shape[1]
        assert virtual[0].shape[-2:] == (H, W), (
            f"virtual views {tuple(virtual[0].shape[-2:])} must have the input size {(H, W)}"
        )
        ops = _ops(schedule, v, v + vv, n, self.config.update_views)
        x, _ = self._blocks(
            torch.cat([tokens, vt], dim=1), ops, None, tokens_per_view=n, progress=progress, cancel=cancel
        )  # [B, (V + Vv)*n, D]
        return self._decode(x[:, v * n :], vo, vd, vv, H, W)

    # ------------------------------------------------------------------ streaming
    def initial_state(self, batch: int = 1) -> StreamState:
        """Nothing absorbed yet: every layer at its slow weights."""
        return StreamState([blk.ttt.initial_state(batch) for blk in self.blocks], views=0)

    def absorb(
        self,
        state: StreamState,
        images: Tensor,
        c2w: Tensor,
        K: Tensor,
        *,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> StreamState:
        """One chunk of input views (images [B, V, 3, H, W], c2w, K) -> the state after one update
        per layer on the chunk's tokens. Cost: that of the chunk alone."""
        _, layers, _ = self._stream_pass(state, images, c2w, K, update=True, progress=progress, cancel=cancel)
        return StreamState(layers, state.views + images.shape[1])

    def decode(
        self,
        state: StreamState,
        images: Tensor,
        c2w: Tensor,
        K: Tensor,
        *,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> PixelGaussians:
        """Query views (images [B, V, 3, H, W], c2w, K) read the current weights -> their raw
        Gaussians [B, V*H*W, C]. The state is unchanged."""
        v, H, W = images.shape[1], images.shape[-2], images.shape[-1]
        x, _, (ray_o, ray_d) = self._stream_pass(
            state, images, c2w, K, update=False, progress=progress, cancel=cancel
        )
        return self._decode(x, ray_o, ray_d, v, H, W)

    def _stream_pass(
        self,
        state: StreamState,
        images: Tensor,
        c2w: Tensor,
        K: Tensor,
        *,
        update: bool,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> tuple[Tensor, list[FastWeights], tuple[Tensor, Tensor]]:
        """Views through every block from ``state``'s weights, in one chunk that updates them
        (``update``: absorb) or only reads them (decode) and is always applied to.
        -> (tokens [B, V*n, D], fast weights after the chunk, rays (ray_o, ray_d) [B, V*H*W, 3])."""
        v = images.shape[1]
        tokens, ray_o, ray_d = self.tokenize(images, c2w, K)
        n = tokens.shape[1] // v
        ops = [TTTOp(0, v * n, fast_weight=update, update=update, apply=True)]
        x, layers = self._blocks(
            tokens, ops, state.layers, tokens_per_view=n, progress=progress, cancel=cancel
        )
        return x, layers, (ray_o, ray_d)

    def tokens_per_chunk(self, views: int, height: int, width: int) -> int:
        """Tokens one absorb of ``views`` views of height x width processes (independent of how
        many views the state holds)."""
        p = self.config.patch_size
        return views * (height // p) * (width // p)


def _ops(schedule: Schedule, input_views: int, total_views: int, n: int, update_views: int) -> list[TTTOp]:
    """Op list for ``schedule`` over ``total_views`` views of ``n`` tokens, the first
    ``input_views`` updating (chunks of ``update_views`` views for "ar" / "causal")."""
    if schedule == "full":
        return full_ops(input_views * n, total_views * n)
    if schedule == "ar":
        return ar_ops(input_views * n, update_views * n, total_views * n)
    assert schedule == "causal", f"unknown schedule {schedule!r}"
    return causal_ops(input_views * n, update_views * n, total_views * n)
