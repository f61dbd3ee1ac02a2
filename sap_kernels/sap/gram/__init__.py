"""Phase 2: streaming every selected layer's input rows into Grams while the trusted samples run."""
