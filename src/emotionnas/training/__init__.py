"""Training loop, metrics and leak-free cross-validation."""
