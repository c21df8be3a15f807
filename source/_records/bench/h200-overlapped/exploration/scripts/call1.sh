# Call 1: ch4 gpu-check (insurance), sweep (gemv vs cuBLAS, decode tiles), A/B bench, profile of (a).
set -u
export PYTHONUNBUFFERED=1
C=$1; start=$(date +%s); R=/tmp/r; mkdir -p $R/records $R/bench $R/prof
t() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a $R/times.txt; tar czf $OUT/results.tgz -C $R . ; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > $R/gpu.txt
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >> $R/gpu.txt
(python3 -m nanovllm random-checkpoint /tmp/q06 --preset qwen3-0.6b > $R/ckpt.log 2>&1) &
PYTHONPATH=/tmp/site:. NANOBOOK_ENGINE_COMMIT=$C timeout 100 python3 -m sphinx -b gpucheck -c . -n \
  --keep-going -D nanobook_check_chapter=04 source /tmp/gpucheck > $R/gpucheck.log 2>&1
cp source/_records/04-paged-attention/*.json $R/records/; t gpucheck
PYTHONPATH=.:ab timeout 230 python3 ab/sweep.py $R/sweep.json 110 > $R/sweep.log 2>&1; t sweep
wait
P=$R/sweep-patch.json
for w in b a; do for v in plain overlap overlap-gemv tuned; do
  [ $w = a ] && [ $v = overlap-gemv ] && continue
  case $v in plain) F=""; A="";; overlap) F="--overlap-steps"; A="";; overlap-gemv) F="--overlap-steps --gemv-max-rows 16"; A="";;
    tuned) F="--overlap-steps --gemv-max-rows 16"; A=$P;; esac
  AB_PATCH=$A NANOVLLM_ENGINE_COMMIT=$C PYTHONPATH=.:ab timeout 75 python3 ab/bench_with.py bench --workload $w \
    --model /tmp/q06 --out $R/bench --variant $v $F > $R/bench-$w-$v.log 2>&1
  tail -1 $R/bench-$w-$v.log; t "$w $v"
done; done
AB_PATCH=$P PYTHONPATH=.:ab timeout 100 python3 ab/bench_with.py profile $R/prof /tmp/q06 1 16 > $R/prof.log 2>&1; t profile
