#!/usr/bin/env bash
# One loan of a GPU, one command: check the data, print the device and versions, bench the paper net,
# then train the gpu preset's grid to a budget (the seeds' d2l run first, then the baseline and the
# named ablations), and always pack what finished into $OUT/results.tgz, whatever happened before.
#
#   bash scripts/gpu_session.sh                       # on the lent GPU: 540 s in all, gpu preset, cuda
#   bash scripts/gpu_session.sh --seconds 60 --reserve 40 --preset smoke --device cpu --bench off   # a rehearsal
#   bash scripts/gpu_session.sh -- --only lrn --seeds 3   # what follows -- goes to the grid
#
# Options: --seconds N (all the time the command may take, default 540: the device tool's 600 s limit less a
# minute for its own start and copy-back), --reserve N (kept at the end for the start-up of Python, the last
# epoch, the analysis and the packing, default 120), --preset, --device, --bench on|off, --data FOLDER (the
# Fashion-MNIST .gz files, default .fashion-mnist-gz). The README's "On a lent GPU" gives the whole recipe.
#
# Exit: 0 the grid finished; 75 the budget stopped it (what finished is packed; rerun on the next loan to go
# on); 2 no data; 124 the outer timeout killed the grid (the budget's estimates were too short); else the
# grid's own code. Only python3 is used: the lent machine has no `python`, nox or papermill.
set -uo pipefail
seconds=540 reserve=120 preset=gpu device=cuda bench=on data=.fashion-mnist-gz
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2 ;; --reserve) reserve=$2 ;; --preset) preset=$2 ;; --device) device=$2 ;;
    --bench) bench=$2 ;; --data) data=$2 ;;
    --) shift; break ;;
    *) echo "gpu_session: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
started=$(date +%s)
left() { echo $(( started + seconds - $(date +%s) )); }

for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ ! -s "$data/$name.gz" ]; then
    echo "gpu_session: no Fashion-MNIST in $data/ ($name.gz missing): cp /usr/share/datasets/fashion-mnist/*.gz" \
         "$data/ here, and name $data in the device tool's carry" >&2
    exit 2
  fi
done
export REPRODUCE_FASHION_MNIST_SYSTEM_DIR=$PWD/$data PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-session-out}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out" results/sessions
log=results/sessions/$stamp-$device.log
exec > >(tee -a "$log") 2>&1  # the session's log travels home with its results

echo "== $stamp: preset $preset on $device, $seconds s in all, $reserve s kept for the end"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import platform, torch, torchvision; print('python', platform.python_version(), '| torch', \
torch.__version__, '| torchvision', torchvision.__version__, '| cuda', torch.version.cuda, '| cudnn', \
torch.backends.cudnn.version(), '| cpu', platform.processor() or platform.machine())"

compile=auto
limit=$(( $(left) - reserve < 240 ? $(left) - reserve : 240 ))  # the bench may take at most this
if [ "$bench" = on ] && [ "$limit" -gt 0 ]; then
  echo "== bench: the paper net, bf16 and compiled"
  if ! timeout "$limit" python3 -m reproduce bench --networks paper --device "$device" --seconds 10 \
       --compile on --profile on; then
    echo "== the compiled bench failed (exit above): going on with --compile off"
    compile=off
    timeout "$limit" python3 -m reproduce bench --networks paper --device "$device" --seconds 10 --compile off
  fi
fi

budget=$(( $(left) - reserve ))
status=75
if [ "$budget" -gt 0 ]; then
  echo "== grid: preset $preset, $budget s of budget"
  # The outer timeout is a last resort: the budget should stop the grid first, at an epoch end.
  timeout --kill-after=10 $(( $(left) - 20 )) python3 -m reproduce grid --preset "$preset" --device "$device" \
    --compile "$compile" --time-budget "$budget" "$@"
  status=$?
else
  echo "== no time left for the grid ($budget s)"
fi
echo "== grid exit $status; packing"
python3 -m reproduce.pack "$out/results.tgz"
exit $status
