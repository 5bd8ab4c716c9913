"""``lrm-studio bench ...``: benchmarks that measure the targets the issues set."""
