"""Running a model safely: scoped switches, wrappers, memory layout, the forward call,
torch.distributed.
"""
