"""Phase 1: ranking the training samples and choosing the trusted ones."""
