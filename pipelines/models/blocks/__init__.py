"""Building blocks shared by the feed-forward models (one file per block).

- ``attention``: pre-norm transformer block on torch SDPA (flash on GPU), a math path behind one flag.
- ``mamba2``: the Mamba2 mixer (chunked SSD scan in PyTorch, mamba-ssm's fused kernel on CUDA)
  and Long-LRM's bidirectional block.
- ``token_merge``: the 2x2 channel-wise (grouped) convolution that merges image tokens.
- ``plucker``: per-pixel RGB + Plücker ray features, patchified into tokens.
- ``gaussian_head``: per-pixel Gaussian decoder, its activations and opacity pruning.
- ``dinov2``, ``rope3d``, ``deformable_attention``: GeoLRM's (see those files).
- ``weight_init``: the official Linear initialisation of Long-LRM and tttLRM; ``checkpointing``:
  one block under activation checkpointing when the model's flag asks.

Importing this package builds and imports nothing optional (mamba-ssm is imported lazily on CUDA).
"""
