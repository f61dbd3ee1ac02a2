"""What is projected: targets and streams, the units that feed them (Linear/Conv, attention),
discovery, the head, weight access.
"""
