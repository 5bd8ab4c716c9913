"""Activation checkpointing of one block, as the models' ``grad_checkpointing`` flag asks.

Examples:
    >>> lin = torch.nn.Linear(3, 3)
    >>> checkpointed(True, lin, torch.randn(2, 3)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn


def checkpointed(enabled: bool, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)``; when ``enabled`` and autograd is recording, under
    non-reentrant activation checkpointing (activations recomputed in backward)."""
    if enabled and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False, **kwargs)
    return module(*args, **kwargs)
