"""Feed-forward reconstructors: one sub-package per model, shared blocks in ``blocks``.

Every model offers the same interface (``base.Reconstructor``): views in (images, K, c2w),
Gaussians out in the world frame of the input cameras. ``base.MODELS`` names the models.
"""
