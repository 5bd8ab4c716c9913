"""All computation of lrm-studio: cameras, Gaussians and their renderer, capture ingest, SfM,
feed-forward models, optimization, training and procedural data.

Importing this package builds nothing and prints nothing; submodules are imported on use.
Nothing here imports ``studio`` or ``viewer``.
"""
