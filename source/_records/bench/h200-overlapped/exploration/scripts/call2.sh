set -u
export PYTHONUNBUFFERED=1
C=$1; start=$(date +%s); R=/tmp/r; mkdir -p $R/bench $R/prof
t() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a $R/times.txt; tar czf $OUT/results.tgz -C $R . ; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
(python3 -m nanovllm random-checkpoint /tmp/q06 --preset qwen3-0.6b > $R/ckpt.log 2>&1) &
PYTHONPATH=.:ab timeout 150 python3 ab/sweep2.py $R/sweep2.json > $R/sweep2.log 2>&1; t sweep
wait
P=$R/sweep2-patch.json
for w in b a; do for g in 0 16; do
  AB_PATCH=$P NANOVLLM_ENGINE_COMMIT=$C PYTHONPATH=.:ab timeout 75 python3 ab/bench_with.py bench --workload $w \
    --model /tmp/q06 --out $R/bench --variant overlap-gemv$g --overlap-steps on --gemv-max-rows $g > $R/bench-$w-$g.log 2>&1
  tail -1 $R/bench-$w-$g.log; t "$w gemv $g"
done; done
AB_PATCH=$P PYTHONPATH=.:ab timeout 90 python3 ab/bench_with.py profile1 $R/prof /tmp/q06 1 16 > $R/prof.log 2>&1; t profile
PYTHONPATH=/tmp/site:. timeout 150 python3 -m pytest -q -p no:cacheprovider --confcutdir=tests/engine -ra \
  tests/engine/test_kernels.py tests/engine/test_overlap.py > $R/tests.log 2>&1; t tests
tail -3 $R/tests.log
