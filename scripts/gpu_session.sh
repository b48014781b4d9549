#!/usr/bin/env bash
# One loan of a GPU, one command: check the data, print the device and versions and the yield the budget
# should buy, bench the paper net once per device kind and training code, then train the gpu preset's grid
# to a budget (the seeds' d2l run first, then the baseline and the named ablations), and always pack what
# finished into $OUT/results.tgz, whatever happened before.
#
#   bash scripts/gpu_session.sh                       # on the lent GPU: 540 s in all, gpu preset, cuda
#   bash scripts/gpu_session.sh --seconds 120 --reserve 30 --preset smoke --device cpu --bench off   # a rehearsal
#   bash scripts/gpu_session.sh -- --only lrn --seeds 3   # what follows -- goes to the grid
#
# Options: --seconds N (all the time the command may take, default 540: the device tool's 600 s limit less a
# minute for its own start and copy-back), --reserve N (kept at the end for the last epoch's analysis and the
# packing, default 60, at least 30), --preset, --device, --bench auto|on|off (auto: only when results/bench/
# lacks this device kind's records made by this training code; on: always), --data FOLDER (the Fashion-MNIST
# .gz files, default .fashion-mnist-gz). docs/gpu.md gives the whole recipe.
#
# Exit: 0 the grid finished; 75 the budget stopped it (what finished is packed; rerun on the next loan to go
# on); 2 no data, or a bad option; 124 the outer timeout killed the grid (the budget's estimates were too
# short); else the grid's own code. Only python3 is used: the lent machine has no `python`, nox or papermill.
set -uo pipefail
seconds=540 reserve=60 preset=gpu device=cuda bench=auto data=.fashion-mnist-gz
MIN_RESERVE=30  # the grid's outer timeout ends 20 s before the command; packing and Python's start need the rest
BENCH_LIMIT=90  # the bench's own limit: once per device kind and code, the first loan pays its compile
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2 ;; --reserve) reserve=$2 ;; --preset) preset=$2 ;; --device) device=$2 ;;
    --bench) bench=$2 ;; --data) data=$2 ;;
    --) shift; break ;;
    *) echo "gpu_session: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
if ! [[ "$reserve" =~ ^[0-9]+$ && "$seconds" =~ ^[0-9]+$ ]] || [ "$reserve" -lt "$MIN_RESERVE" ]; then
  echo "gpu_session: --reserve $reserve --seconds $seconds: expected whole seconds, the reserve at least $MIN_RESERVE" >&2
  exit 2
fi
case $bench in auto|on|off) ;; *) echo "gpu_session: --bench $bench: expected auto, on or off" >&2; exit 2 ;; esac
started=$(date +%s)
left() { echo $(( started + seconds - $(date +%s) )); }
at_least_zero() { echo $(( $1 > 0 ? $1 : 0 )); }

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

echo "== $stamp: preset $preset on $device, $seconds s in all, $reserve s kept for the end, bench $bench"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import platform, torch, torchvision; print('python', platform.python_version(), '| torch', \
torch.__version__, '| torchvision', torchvision.__version__, '| cuda', torch.version.cuda, '| cudnn', \
torch.backends.cudnn.version(), '| cpu', platform.processor() or platform.machine())"
echo "== the plan, and what the grid's budget should buy"
python3 -m reproduce grid --preset "$preset" --device "$device" --dry-run \
  --time-budget "$(at_least_zero $(( $(left) - reserve )))" "$@"

compile=auto
limit=$(( $(left) - reserve - 60 < BENCH_LIMIT ? $(left) - reserve - 60 : BENCH_LIMIT ))
if [ "$bench" != off ] && [ "$limit" -ge 20 ]; then
  echo "== bench: the paper net as the grid trains it (skipped where this code measured it: --bench on forces it)"
  keep=$([ "$bench" = auto ] && echo on || echo off)
  timeout --kill-after=5 "$limit" python3 -m reproduce bench --networks paper --device "$device" --seconds 3 \
    --warmup 10 --skip-measured "$keep"
  case $? in
    0) ;;
    3) echo "== compiling failed where eager runs (the line above says why): the grid trains eager (--compile off)"
       compile=off ;;
    124|137) echo "== the bench ran past its $limit s and was stopped: compile stays auto (a timeout is not a" \
                  "compile failure); the grid's budget counts compile time" ;;
    *) echo "== the bench failed (its output is above), not in compiling: compile stays auto" ;;
  esac
elif [ "$bench" != off ]; then
  echo "== no time for the bench ($limit s): the grid goes first"
fi

budget=$(at_least_zero $(( $(left) - reserve )))
status=75
if [ "$budget" -ge 20 ]; then
  echo "== grid: preset $preset, $budget s of budget"
  # The outer timeout is a last resort: the budget should stop the grid first, at an epoch end.
  timeout --kill-after=10 $(( $(left) - 20 )) python3 -m reproduce grid --preset "$preset" --device "$device" \
    --compile "$compile" --time-budget "$budget" "$@"
  status=$?
else
  echo "== no time left for the grid ($budget s)"
fi
echo "== grid exit $status; packing"
python3 -m reproduce.tools.pack "$out/results.tgz"
exit $status
