#!/usr/bin/env bash
# One lent-GPU training session, run on the device machine from the repository root
# (docs/training.md, "Training on a lent GPU"). It expects the carried folder .gpu/ with
# pack/ (python -m codec data pack --out .gpu/pack) and whl/ (pydantic's wheels for
# Python 3.12). Phase "start" installs, unpacks and launches the three runs in the background
# (setsid: they outlive the call); "wait" reports (not needed in a 15-minute session); "finish" waits for them and copies each
# run's model and log to $OUT.
set -u
phase=${1:-start}
export PYTHONPATH=/tmp/site
runs="gpu-finetune-gan gpu-finetune gpu-scratch"
report() {
  for r in $runs; do
    echo "== $r: $(tail -c 300 /tmp/runs/$r.log | tr '\r' '\n' | grep -v '^\s*$' | tail -1)"
    tail -n 1 /tmp/runs/$r/log.csv 2>/dev/null | cut -c1-160
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}
case $phase in
start)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
  python3 -m codec data unpack --source .gpu/pack --out /tmp/data || exit 1
  mkdir -p /tmp/runs
  for r in $runs; do
    setsid nohup python3 -m codec train --config codec/train/configs/$r.toml --data /tmp/data --out /tmp/runs/$r --quiet \
      > /tmp/runs/$r.log 2>&1 < /dev/null &
  done
  sleep 90; report
  pgrep -f "codec train" > /dev/null || { echo "every run died"; exit 1; }
  sleep "${2:-450}"; report ;;
wait)
  sleep "${2:-560}"; report ;;
finish)
  for _ in $(seq 1 120); do pgrep -f "codec train" > /dev/null || break; sleep 5; done
  report
  for r in $runs; do
    python3 -c "import torch; s = torch.load('/tmp/runs/$r/checkpoint.pt', weights_only=False, map_location='cpu'); \
torch.save({k: s[k] for k in ('model', 'step', 'config')}, '$OUT/$r.pt')"
    cp /tmp/runs/$r/log.csv "$OUT/$r.csv"
  done ;;
esac
