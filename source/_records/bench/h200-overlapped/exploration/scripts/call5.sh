set -u
export PYTHONUNBUFFERED=1
C=$1; start=$(date +%s); R=/tmp/r; mkdir -p $R/ab
t() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a $R/times.txt; tar czf $OUT/results.tgz -C $R . ; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
(python3 -m nanovllm random-checkpoint /tmp/q06 --preset qwen3-0.6b > $R/ckpt.log 2>&1) &
PYTHONPATH=/tmp/site:. timeout 150 python3 -m pytest -q -p no:cacheprovider --confcutdir=tests/engine -ra \
  tests/engine/test_generation_invariance.py tests/engine/test_model_inputs.py tests/engine/test_faults.py \
  tests/engine/test_llm_api.py > $R/tests.log 2>&1; t tests
tail -3 $R/tests.log
wait
for v in "c plain --overlap-steps off" "c overlapped --overlap-steps on"; do
  set -- $v
  NANOVLLM_ENGINE_COMMIT=$C timeout 60 python3 -m nanovllm bench --workload $1 --model /tmp/q06 \
    --out $R/ab --variant $2 $3 $4 > $R/ab-$1-$2.log 2>&1; tail -1 $R/ab-$1-$2.log; t "$1 $2"
done
PYTHONPATH=. timeout 60 python3 ab/syncdebug.py /tmp/q06 $R/sync.txt > $R/sync.log 2>&1; t sync
tail -c 1500 $R/sync.txt
