"""The test suite, a package: helper modules import as `tests.<folder>.<module>` (run from the repository root)."""
