#!/usr/bin/env bash
# Reproduce the "Training (BNN-Clip)" table of the README: every run on one thread, one after the
# other, into runs/. CIFAR-10 is read from the JPEG copy extracted into data/cifar10 (see README):
#   CIFAR10_JPG=PATH/cifar10-jpg.tar.gz bash scripts/train-results.sh
# (train/<class>/*.jpg and test/<class>/*.jpg; not needed again once this script extracted it).
set -euo pipefail
if [ -n "${CIFAR10_JPG:-}" ]; then CIFAR10_JPG=$(realpath -- "$CIFAR10_JPG"); fi
cd "$(dirname "$0")/.."
T="--threads 1 --quiet"
FM=(--dataset fashion-mnist)
C10=(--dataset cifar10 --data data/cifar10 --augment)
if [ ! -f data/cifar10/.complete ]; then  # extracted whole, or again
  if [ ! -f "${CIFAR10_JPG:-}" ]; then
    echo "train-results.sh: data/cifar10 is not extracted: set CIFAR10_JPG to cifar10-jpg.tar.gz" >&2
    exit 2
  fi
  rm -rf data/cifar10.partial && mkdir -p data/cifar10.partial
  tar -xzf "$CIFAR10_JPG" -C data/cifar10.partial && touch data/cifar10.partial/.complete
  rm -rf data/cifar10 && mv data/cifar10.partial data/cifar10
fi
bnnmlir train "${FM[@]}" --stage bnn --epochs 8 --lr 2e-3 --out runs/fm-bnn $T
bnnmlir train "${FM[@]}" --stage bnn-clip --init runs/fm-bnn --epochs 3 --lr 1e-4 --out runs/fm-bnn-clip $T
bnnmlir train "${FM[@]}" --stage full-precision --epochs 3 --lr 1e-3 --out runs/fm-fp $T
bnnmlir train "${C10[@]}" --stage bnn --epochs 6 --lr 2e-3 --out runs/c10-bnn $T
bnnmlir train "${C10[@]}" --stage bnn-clip --init runs/c10-bnn --epochs 1 --lr 1e-4 --out runs/c10-bnn-clip $T
bnnmlir train "${C10[@]}" --stage full-precision --epochs 3 --lr 1e-3 --out runs/c10-fp $T
bnnmlir train --table runs/fm-fp runs/fm-bnn runs/fm-bnn-clip runs/c10-fp runs/c10-bnn runs/c10-bnn-clip
