#!/usr/bin/env bash
# The GPU evidence, one command per step, on a lent GPU machine (the device tool runs this in a copy of
# the working tree; the machine has torch but neither nox nor papermill nor, perhaps, tqdm).
#
#   bash scripts/gpu_session.sh bench           # `reproduce bench` on CUDA, with profiles (a few minutes)
#   bash scripts/gpu_session.sh grid SECONDS    # the gpu preset's grid, ending within SECONDS; rerun to go on
#
# Carry (device tool `carry`): .fashion-mnist-gz/ (a copy of /usr/share/datasets/fashion-mnist, 30 MB) and
# .whl/ (wheels of what the machine lacks, e.g. tqdm). Each step packs results/ into $OUT/results.tgz:
# unpack it here (tar -xzf <files_at>/results.tgz), commit the records with their device and versions, then
# execute the gpu notebooks from them on this machine and build the book:
#   python -m reproduce notebooks --preset gpu --train off
# A run the budget stopped has its checkpoint on the GPU machine (results/checkpoints/ is not carried back):
# the next call, on the same warm machine, resumes it; on a fresh machine it starts again.
set -uo pipefail
step=${1:?"usage: gpu_session.sh bench|grid [SECONDS]"}
budget=${2:-540}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
export REPRODUCE_FASHION_MNIST_SYSTEM_DIR=${REPRODUCE_FASHION_MNIST_SYSTEM_DIR:-$PWD/.fashion-mnist-gz}
python -c "import tqdm" 2>/dev/null || pip install --quiet --no-index --find-links .whl tqdm
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c "import torch, torchvision; print('torch', torch.__version__, '| torchvision', torchvision.__version__, \
'| cuda', torch.version.cuda, '| cudnn', torch.backends.cudnn.version())"
case $step in
  bench) python -m reproduce bench --device cuda --profile on; status=$? ;;
  # Four runs per GPU: the four-layer net leaves an H100 mostly idle (performance-notes.md).
  grid) python -m reproduce grid --preset gpu --device cuda --per-gpu 4 --time-budget "$budget"; status=$? ;;
  *) echo "unknown step $step: bench or grid" >&2; exit 2 ;;
esac
kept=$(ls -d results/runs results/grid results/bench results/analysis 2>/dev/null)
tar -czf "$out/results.tgz" $kept && echo "packed: $kept -> $out/results.tgz"
exit $status
