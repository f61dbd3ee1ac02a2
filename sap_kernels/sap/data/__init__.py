"""What loaders yield: batches, samples kept on the host, and what an output and its labels mean."""
