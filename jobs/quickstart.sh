#!/usr/bin/env bash
# Fresh machine to a real training run: sets baton up, then trains LeNet-5 on Debian's
# Fashion-MNIST for 3 epochs (about 10 s per epoch on 2 cores) and writes metrics.jsonl.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/jobs/setup.sh"
"$repo/build/runtime/baton" train --model lenet5 --dataset fashion-mnist \
  --data-dir /usr/share/datasets/fashion-mnist --epochs 3 --metrics "$repo/metrics.jsonl" "$@"
