"""The statistics between phases 2 and 3 (in memory and on disk) and their eigendecomposition
(phase 3).
"""
