"""Shared test setup: the ``gpu`` marker skips without CUDA; fresh random seeds per test; Triton's
interpreter on machines without CUDA; the browser and a small running studio for the browser
tests.

Seeds are drawn fresh each run (printed on failure through the ``seed`` fixture's value) so
tests exercise new inputs; set LRM_TEST_SEED to replay one.

Our Triton kernels (pipelines/models/blocks/kernels/) run on the CPU only in Triton's
interpreter, which triton reads when a kernel is defined, i.e. when a kernel module is first
imported. This file is imported before any test module, so without CUDA it switches the
interpreter on here (an explicit TRITON_INTERPRET wins); with CUDA the kernels compile as usual.
Nothing else here uses triton (torch's CPU paths do not), so the variable changes nothing else.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request) -> int:
    """A fresh seed (or LRM_TEST_SEED); shown in the test report on failure."""
    value = int(os.environ.get("LRM_TEST_SEED", random.randrange(2**31)))
    request.node.user_properties.append(("seed", value))
    print(f"seed={value}")
    return value


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ browser tests
@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium through Playwright (skipped, with the reason, when missing)."""
    from studio.bench.browser import headless_chromium, missing_reason

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with headless_chromium() as b:
        yield b


@pytest.fixture
def running(tmp_path, gen):
    """A studio served on a free port over a small workspace: capture "garden" (12 frames of
    96x64, one unregistered) with one 3DGS run (``running.run_dir``)."""
    from studio_helpers import make_capture, make_run

    from studio.config import StudioConfig
    from viewer.app import start_studio

    ws = tmp_path / "ws"
    make_capture(ws / "garden", 12, gen, width=96, height=64, points=300, unregistered=1)
    run = make_run(ws / "garden", gen, n=1500, extent=0.7)
    r = start_studio(StudioConfig(workspace=ws, port=0, demo=False))
    r.run_dir = run
    yield r
    r.stop()
