"""tttLRM inference, offline and streaming: posed views in, pruned Gaussians out in the input
cameras' world frame.

Offline (:meth:`TTTLRMReconstructor.__call__`): preprocess (official size and pose frame) ->
network under the preset's schedule ("full": one fast-weight update over all views; "ar": the
official AR op) with the input views as virtual views -> activations -> pruning (40 % most
opaque + 10 % of the rest, 30 % + 5 % from 64 views on; seeded) -> world frame.

Streaming (:class:`TTTStream`, :meth:`TTTLRMReconstructor.reconstruct_streaming`): the
normalisation is fixed from reference cameras, then chunks of views are absorbed one at a time
(each layer's fast weights updated on the chunk: constant work per chunk); Gaussians can be
decoded at any time from the current weights, for the views absorbed so far or any others. A
preview after each chunk either decodes only the new chunk ("merge": constant work, earlier
Gaussians kept; the paper's "Predict & Merge") or re-decodes every absorbed view ("full": the
paper's "Full reconstruction", work grows with the views). The result is always the full
decode after the last chunk. Decoding runs in groups of ``decode_views`` views (query views do
not interact: the result is the same, the memory bounded).

Every stage is timed with CUDA synchronisation; bf16 autocast on CUDA, float32 on the CPU. The
offline pipeline is :class:`~pipelines.models.pixel_reconstructor.PixelReconstructor`'s.

Examples:
    >>> rec = TTTLRMReconstructor(TTTLRM(PRESETS["tiny"]), device="cpu")           # doctest: +SKIP
    >>> out = rec(views)                                                            # doctest: +SKIP
    >>> out = rec.reconstruct_streaming(views, chunk_views=4, on_chunk=print)      # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.models.base import Reconstruction, Views
from pipelines.models.blocks.gaussian_head import keep_counts, keep_top_and_random
from pipelines.models.pixel_reconstructor import PixelReconstructor
from pipelines.models.runtime import LapTimer
from pipelines.models.ttt_lrm.memory import check_memory
from pipelines.models.ttt_lrm.model import TTTLRM, StreamState
from pipelines.models.ttt_lrm.preprocess import Prepared, normalization, prepare
from pipelines.progress import CancelToken, Progress, check, no_progress
from pipelines.transforms import Similarity

log = logging.getLogger(__name__)

Preview = Literal["merge", "full", "none"]


@dataclass
class StreamStep:
    """One absorbed chunk. views: views absorbed so far; chunk_views / chunk_tokens: this chunk's;
    absorb_s / decode_s: synchronized seconds of the update and of the preview decode;
    gaussians: the preview (world frame, pruned) or None; state_numel: numbers in the fast-weight
    state (constant)."""

    index: int
    views: int
    chunk_views: int
    chunk_tokens: int
    absorb_s: float
    decode_s: float
    gaussians: Gaussians | None
    state_numel: int

    def row(self) -> dict:
        """JSON-friendly summary (no Gaussians)."""
        n = None if self.gaussians is None else self.gaussians.num
        return {
            "chunk": self.index, "views": self.views, "chunk_views": self.chunk_views,
            "chunk_tokens": self.chunk_tokens, "absorb_s": self.absorb_s, "decode_s": self.decode_s,
            "preview_gaussians": n,
        }  # fmt: skip


class TTTStream:
    """A streaming reconstruction: the fast weights are the state (see module doc).

    ``to_model``: world -> normalised frame, fixed for the whole stream."""

    def __init__(self, rec: TTTLRMReconstructor, to_model: Similarity) -> None:
        self.rec = rec
        self.to_model = to_model
        self.to_world = to_model.inverse()
        self.state: StreamState = rec.model.initial_state(1)
        self._views: list[Prepared] = []  # absorbed chunks at the model size, normalised frame

    @property
    def views_absorbed(self) -> int:
        return self.state.views

    def _prepare(self, views: Views) -> Prepared:
        c = self.rec.config
        return prepare(
            views.to(self.rec.device), width=c.image_width, height=c.image_height, to_model=self.to_model
        )

    @torch.inference_mode()
    def absorb(self, views: Views, *, cancel: CancelToken | None = None) -> None:
        """Update every layer's fast weights on these views (one chunk)."""
        prep = self._prepare(views)
        with self.rec.autocast():
            self.state = self.rec.model.absorb(
                self.state, prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None], cancel=cancel
            )
        self._views.append(prep)

    @torch.inference_mode()
    def decode(
        self, views: Views | None = None, *, last_chunk: bool = False, cancel: CancelToken | None = None
    ) -> Gaussians:
        """Gaussians (world frame, pruned) read from the current weights: of ``views`` (any posed
        views, e.g. virtual cameras), else of the last absorbed chunk (``last_chunk``), else of
        every absorbed view. Pruning follows the official ratios for the views absorbed."""
        if views is not None:
            preps = [self._prepare(views)]
        else:
            assert self._views, "nothing absorbed yet"
            preps = self._views[-1:] if last_chunk else self._views
        images = torch.cat([p.images for p in preps])
        cams = Cameras.cat([p.cameras for p in preps])
        g = self.rec.decode_gaussians(self.state, images, cams, cancel=cancel)
        return self.rec.prune(g, self.state.views).transform(self.to_world)


class TTTLRMReconstructor(PixelReconstructor):
    """A loaded tttLRM ready for inference. ``seed`` seeds the random share of pruning;
    ``decode_views``: query views decoded per group (memory bound, same result)."""

    name = "ttt-lrm"
    model: TTTLRM

    def __init__(
        self,
        model: TTTLRM,
        *,
        device: str | torch.device = "cpu",
        weights: Path | None = None,
        seed: int = 0,
        decode_views: int = 16,
    ) -> None:
        super().__init__(model, device=device, weights=weights, seed=seed)
        self.decode_views = decode_views
        self._noted_schedule = False  # the "full preset streamed" note is logged once

    # ------------------------------------------------------------------ planning
    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the network runs at (the preset's size, whatever the input's)."""
        return self.config.image_width, self.config.image_height

    def check_memory(self, views: int, width: int, height: int, *, chunk_views: int | None = None) -> int:
        """Raise InsufficientMemory if ``views`` views will not fit; returns the estimated peak bytes.
        ``chunk_views``: streamed in chunks of that many views (decoded in groups of at least
        ``decode_views``); None: offline."""
        group = None if chunk_views is None else max(chunk_views, self.decode_views)
        return check_memory(self.config, views=views, device=self.device, chunk_views=group)

    # ------------------------------------------------------------------ shared steps
    def prepare(self, views: Views) -> Prepared:
        c = self.config
        return prepare(views, width=c.image_width, height=c.image_height, frame=c.frame)

    def prune(self, g: Gaussians, input_views: int) -> Gaussians:
        """The official pruning (ratios by the number of input views), seeded by ``seed``."""
        top, rest = self.config.keep_ratios(input_views)
        gen = torch.Generator(device=g.means.device).manual_seed(self.seed)
        return keep_top_and_random(g, *keep_counts(g.num, top, rest), gen)

    def decode_gaussians(
        self, state: StreamState, images: torch.Tensor, cams: Cameras, *, cancel: CancelToken | None = None
    ) -> Gaussians:
        """Unpruned Gaussians (normalised frame) of query views (images [V, 3, H, W] at the model
        size, cameras normalised), decoded in groups of ``decode_views``."""
        parts = []
        for s in range(0, images.shape[0], self.decode_views):
            check(cancel)
            e = s + self.decode_views
            with self.autocast():
                raw = self.model.decode(state, images[None, s:e], cams.c2w[None, s:e], cams.K[None, s:e])
            parts.append(raw.to_gaussians()[0])
        return parts[0] if len(parts) == 1 else Gaussians.cat(parts)

    # ------------------------------------------------------------------ offline: PixelReconstructor.__call__
    def extra_info(self) -> dict:
        return {"schedule": self.config.schedule, "frame": self.config.frame}

    # ------------------------------------------------------------------ streaming
    def start_stream(self, reference: Cameras) -> TTTStream:
        """A stream whose normalised frame comes from ``reference`` (the preset's frame method:
        first camera for the AR model, mean camera otherwise): all input cameras when they are
        known, else the first chunk's."""
        return TTTStream(self, normalization(reference, self.config.frame))  # poses only: size-independent

    def stream_chunk_views(self, chunk_views: int | None) -> int:
        """Views per chunk: ``chunk_views``, else the preset's update interval (4 for official-ar)."""
        n = chunk_views or self.config.update_views
        if self.config.schedule == "full" and not self._noted_schedule:
            self._noted_schedule = True
            log.info(
                "this tttLRM preset was trained with one update over all views; streaming in chunks "
                "of %d views is another schedule (official-ar is the streaming model)", n,
            )  # fmt: skip
        return n

    def reconstruct_streaming(
        self,
        views: Views,
        *,
        chunk_views: int | None = None,
        preview: Preview = "merge",
        on_chunk: Callable[[StreamStep], None] | None = None,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> Reconstruction:
        """Feed ``views`` in order, ``chunk_views`` at a time (default: the preset's update
        interval), calling ``on_chunk`` after each chunk; returns the final full decode."""
        dev = self.device
        chunk = self.stream_chunk_views(chunk_views)
        v = len(views.cameras)
        self.check_memory(v, views.cameras.width, views.cameras.height, chunk_views=chunk)
        clock = LapTimer(dev)
        stream = self.start_stream(views.cameras)
        rows: list[dict] = []
        merged: list[Gaussians] = []
        last: Gaussians | None = None
        n_chunks = -(-v // chunk)
        for i, s in enumerate(range(0, v, chunk)):
            check(cancel)
            last = None  # the previous full preview is not kept beside the next one
            part = Views(views.images[s : s + chunk], views.cameras[s : s + chunk])
            clock.lap()
            stream.absorb(part, cancel=cancel)
            absorb_s = clock.lap()
            g = None
            if preview == "merge":
                merged.append(stream.decode(last_chunk=True, cancel=cancel))
            elif preview == "full":
                g = stream.decode(cancel=cancel)
            decode_s = clock.lap() if preview != "none" else 0.0
            if preview == "merge":  # the earlier chunks' Gaussians kept (not timed: a copy)
                g = Gaussians.cat(merged) if len(merged) > 1 else merged[0]
            step = StreamStep(
                i, stream.views_absorbed, len(part.cameras), self.model.tokens_per_chunk(
                    len(part.cameras), self.config.image_height, self.config.image_width),
                absorb_s, decode_s, g, stream.state.num_elements,
            )  # fmt: skip
            progress(
                0.9 * (i + 1) / n_chunks,
                f"chunk {i + 1}/{n_chunks}: {step.views} views, "
                f"absorb {absorb_s:.2f} s, preview {decode_s:.2f} s",
            )
            if on_chunk is not None:
                on_chunk(step)
            # keep each step's row, not its preview: every step's merged Gaussians together
            # would grow with the square of the chunks (the last full preview is the result)
            rows.append(step.row())
            last = g if preview == "full" else None
            del g, step
        merged.clear()  # free the previews before the final decode
        progress(0.92, "decoding every view from the final weights")
        if last is not None:
            g, final_s = last, 0.0
        else:
            clock.lap()
            g = stream.decode(cancel=cancel)
            final_s = clock.lap()
        assert g is not None
        timings = {
            "absorb_s": sum(r["absorb_s"] for r in rows),
            "preview_s": sum(r["decode_s"] for r in rows),
            "decode_s": final_s,
            "total_s": clock.total(),
        }
        info = {
            "model_size": [self.config.image_width, self.config.image_height],
            "num_views": v,
            "schedule": "causal (streaming)",
            "chunk_views": chunk,
            "preview": preview,
            "frame": self.config.frame,
            "precision": self.precision,
            "stream": rows,
        }
        progress(1.0, f"{g.num:,} Gaussians")
        return Reconstruction(gaussians=g, to_world=stream.to_world, timings=timings, info=info)
