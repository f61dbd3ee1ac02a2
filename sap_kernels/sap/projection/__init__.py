"""Phase 5: per-target projectors, the projection variants, writing the weights, repeated rounds."""
