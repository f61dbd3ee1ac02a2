"""Phase 4: sweeping alpha on data and picking one."""
