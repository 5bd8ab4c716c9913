"""CLI command functions: thin wrappers that parse flags (tyro) and call one studio function."""
