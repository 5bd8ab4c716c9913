"""The feed-forward models the Reconstruct panel offers: weights files found on disk plus the
registered models with their default weights.

- Shipped weights: ``assets/models/<model>-<preset>.safetensors`` (the convention of
  ``pipelines.models.checkpoints.shipped_weights``); the model is the longest registered name
  that prefixes the file name, the rest is the preset.
- Workspace weights: ``WORKSPACE/weights/*.safetensors`` (from ``lrm-studio weights import`` or
  training); the model is the file's ``model`` metadata, else its name prefix as above.
- Every registered model with no file (its preset or shipped weights resolve as
  ``lrm-studio reconstruct --model NAME`` does).

The default is Long-LRM ``tiny-demo`` when its shipped weights are present (small, CPU-fast),
else the first file found, else tttLRM, else the first registered model.

Examples:
    >>> choices = model_choices(Path("ws/weights"))          # doctest: +SKIP
    >>> [c.label for c in choices]                           # doctest: +SKIP
    ['geolrm tiny-demo (shipped, procedural scenes only)',
     'long-lrm tiny-demo (shipped, procedural scenes only)', 'geolrm', 'long-lrm', 'ttt-lrm']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.models.checkpoints import ASSETS_MODELS, procedural_only, weights_metadata

WEIGHTS_DIR = "weights"  # the workspace's weights folder
PROCEDURAL_NOTE = (
    "trained on procedural scenes only (a demonstration of the training path): on real captures it can "
    "score below a flat mean-colour image; for real captures use the official weights"
)
DEFAULT_CHOICE = ("long-lrm", "tiny-demo")  # (model, preset) preferred when shipped


@dataclass(frozen=True)
class ModelChoice:
    """One dropdown entry. weights: the file (None: the model's default); preset: the shipped
    file's preset (None for workspace files: read from the file's metadata or shapes)."""

    label: str
    model: str
    weights: Path | None = None
    preset: str | None = None
    origin: str = "registered"  # "shipped" | "workspace" | "registered"
    note: str | None = None  # what the weights are good for, when that is a warning (PROCEDURAL_NOTE)


def weights_note(path: Path | None) -> str | None:
    """:data:`PROCEDURAL_NOTE` for weights trained on procedural scenes only, else None."""
    return PROCEDURAL_NOTE if path is not None and procedural_only(weights_metadata(path)) else None


def model_of_name(stem: str, models: tuple[str, ...]) -> tuple[str, str] | None:
    """(model, rest) for a file stem ``<model>-<rest>`` of a registered model (longest match)."""
    for m in sorted(models, key=len, reverse=True):
        if stem.startswith(m + "-") and len(stem) > len(m) + 1:
            return m, stem[len(m) + 1 :]
        if stem == m:
            return m, ""
    return None


def model_choices(
    workspace_weights: Path | None, *, shipped: Path = ASSETS_MODELS, models: tuple[str, ...] | None = None
) -> list[ModelChoice]:
    """Choices in order: shipped files, workspace files, then the registered models (module doc)."""
    if models is None:
        from pipelines.models.base import MODELS

        models = tuple(sorted(MODELS))
    out: list[ModelChoice] = []
    for path in sorted(shipped.glob("*.safetensors")) if shipped.is_dir() else []:
        found = model_of_name(path.stem, models)
        if found is not None:
            m, preset = found
            note = weights_note(path)
            label = f"{m} {preset} (shipped{', procedural scenes only' if note else ''})"
            out.append(ModelChoice(label, m, path, preset or None, "shipped", note))
    ws_files = (
        sorted(workspace_weights.glob("*.safetensors"))
        if workspace_weights and workspace_weights.is_dir()
        else []
    )
    for path in ws_files:
        m = weights_metadata(path).get("model")
        if m not in models:
            found = model_of_name(path.stem, models)
            m = found[0] if found else None
        if m is not None:
            out.append(
                ModelChoice(f"{m}: {path.name} (workspace)", m, path, None, "workspace", weights_note(path))
            )
    out.extend(ModelChoice(m, m) for m in models)
    return out


def default_choice(choices: list[ModelChoice], fallback: str = "ttt-lrm") -> ModelChoice | None:
    """Long-LRM tiny-demo when shipped, else the first file, else the registered model
    ``fallback``, else the first choice."""
    for c in choices:
        if c.origin == "shipped" and (c.model, c.preset) == DEFAULT_CHOICE:
            return c
    files = [c for c in choices if c.weights is not None]
    if files:
        return files[0]
    named = [c for c in choices if c.origin == "registered" and c.model == fallback]
    return named[0] if named else (choices[0] if choices else None)
