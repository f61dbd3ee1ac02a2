#!/usr/bin/env bash
# SAP on CIFAR-10 on one GPU as one prepared call: ResNet-18 for CIFAR trained on 45,000 images with
# 25 % symmetric noise and, as the upper bound, on their clean labels (15 epochs each, SGD 0.9 / 5e-4,
# crop + flip, batch 512), then sap_kernels' calls on CUDA with their times: project without
# validation data, project with the noisy 5,000-image validation split, and the label issues of the
# corrected model (where the installed package has them) with a retrain on what is kept. Sized to
# finish in under 8 minutes on one H100/H200 (not yet measured there); python/cifar10.py --scale gpu.
#
#   benchmarks/cifar10_gpu.sh [--tiny] [OUT.jsonl]     (--tiny: the same arms on CPU, a few hundred images, < 1 min)
#
# Data: ../shared/data/cifar10 (seen from the project root), or set CIFAR10_DATA (the tar, an image-folder
# tree or torchvision's cifar-10-batches-py folder) and CIFAR10N_LABELS (cifar10n_labels.npz).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=gpu device=cuda
if [[ "${1:-}" == "--tiny" ]]; then scale=tiny device=cpu; shift; fi
out=${1:-cifar10_${scale}.jsonl}
extra=()
[[ -n "${CIFAR10_DATA:-}" ]] && extra+=(--data "$CIFAR10_DATA")
[[ -n "${CIFAR10N_LABELS:-}" ]] && extra+=(--labels "$CIFAR10N_LABELS")
if [[ $device == cuda ]]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
start=$(date +%s)
python3 python/cifar10.py --scale "$scale" --device "$device" --label-sets sym25 --seeds 0 \
    --arms vanilla sap_plain sap_val package_issues retrain_clean --out "$out" "${extra[@]}"
python3 python/cifar10.py --summarize --out "$out"
echo "total $(( $(date +%s) - start )) s; records in $out"
