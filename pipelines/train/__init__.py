"""Feed-forward model training (``lrm-studio train``, also under torchrun) and evaluation.

Modules: ``config`` (TrainConfig, recipes), ``data`` (samples: procedural stream, opencv_cameras.json
scenes, capture folders), ``adapters`` (per-model preparation and forward), ``losses`` and
``perceptual`` (the official loss terms), ``trainer`` (the loop, checkpoints, logs, DDP),
``distributed`` (torchrun plumbing), ``evaluate`` and ``baselines`` (held-out PSNR against two
trivial baselines). Importing this package builds nothing.
"""
