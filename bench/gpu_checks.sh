#!/usr/bin/env bash
# The GPU checks the issues ask for, as one prepared script (a session lent a GPU runs it once):
#   bash bench/gpu_checks.sh [OUT]        # OUT: where the logs go (default: $OUT, else bench_gpu)
#   PYTHON=python3 bash bench/gpu_checks.sh   # another interpreter with the project's requirements
# 1. make bench's table on the GPU, fp32 then bf16 autocast, with L-MAC on the AST beside L2I and PIQ;
# 2. one training epoch of L-MAC at the reference sizes (the reference AST, 5 s clips; issue 27 item 6).
# Each step has its own time limit and log; a failed step does not stop the others. run_all.py
# exits 0 with "failed" cells when a measurement fails: read the tables in bench_*.log.
set -u
out=${1:-${OUT:-bench_gpu}}
mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}
step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local status=$?
    echo "   exit $status ($(grep -v '^ *$' "$out/$name.log" | tail -n 1 | cut -c1-200))" | tee -a "$out/summary.txt"
}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
step bench_fp32 600 "$python" bench/run_all.py --device cuda:0 --methods l2i,piq,lmac_ast --runs 5
step bench_bf16 600 "$python" bench/run_all.py --device cuda:0 --precision bf16 --methods l2i,piq,lmac_ast --runs 5
step lmac_ast_full_epoch 600 "$python" bench/measure.py train --method lmac_ast --size full --device cuda:0
