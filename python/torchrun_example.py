#!/usr/bin/env python3
"""SAP in a torchrun job: every process reads its own shard, all end with the same weights.

    torchrun --standalone --nproc-per-node 2 python/torchrun_example.py            # CPU (gloo)
    torchrun --nnodes 2 --nproc-per-node 8 ... python/torchrun_example.py --cuda   # GPUs (NCCL)

A small CNN is trained with DistributedDataParallel on scikit-learn's digits with 25 % of the
training labels flipped, then ``sap_kernels.project`` runs inside the same process group on the
DDP model (``inplace=True``: the module inside DDP is corrected and its replicas stay in sync),
with the training and validation data sharded by ``DistributedSampler``. Rank 0 prints the
result and checks that every rank holds the same weights.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import sap_kernels
from sap_kernels.demo.experiment import ExperimentConfig, make_noisy_digits
from sap_kernels.demo.models import make_model


def sharded(x: torch.Tensor, y: torch.Tensor, shuffle: bool = False) -> DataLoader:
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=64, sampler=DistributedSampler(ds, shuffle=shuffle, seed=0))


def train(model: torch.nn.Module, loader: DataLoader, epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda", action="store_true", help="one GPU per process, NCCL")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    dist.init_process_group("nccl" if args.cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if args.cuda else torch.device("cpu")
    if args.cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(1)
    data = make_noisy_digits(ExperimentConfig(noise_rate=0.25, seed=0))
    s = data.splits
    model = DistributedDataParallel(make_model(0).to(device), device_ids=[device.index] if args.cuda else None)
    train(model, sharded(s.x_train.to(device), data.train_noise.labels.to(device), shuffle=True), args.epochs)

    res = sap_kernels.project(model, sharded(s.x_train, data.train_noise.labels), inplace=True, progress=rank == 0,
                              val_loader=sharded(s.x_val, data.val_noise.labels))
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    copies = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(copies, flat)
    if rank == 0:
        print(res)
        acc = (model.module(s.x_test.to(device)).argmax(1).cpu() == s.y_test).float().mean()
        print(f"test accuracy after SAP: {100 * float(acc):.1f}%; every rank holds the same weights: "
              f"{all(torch.equal(c, copies[0]) for c in copies)}")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
