"""The application: CLI, workspace on disk, background jobs and configuration.

Depends on ``pipelines``; ``viewer`` depends on this package, never the other way round.
"""
