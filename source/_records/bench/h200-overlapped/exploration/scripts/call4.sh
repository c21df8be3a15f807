set -u
export PYTHONUNBUFFERED=1
C=$1; start=$(date +%s); R=/tmp/r; S=$R/suite; mkdir -p $R/records $S $R/ab
t() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a $R/times.txt; tar czf $OUT/results.tgz -C $R . ; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
{ nvidia-smi; nproc; python3 -c "import sys; print(sys.version)"; python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'transformers', transformers.__version__)"; } > $S/h200-env.txt 2>&1
(python3 -m nanovllm random-checkpoint /tmp/q06 --preset qwen3-0.6b > $R/ckpt.log 2>&1) &
PYTHONPATH=/tmp/site:. NANOBOOK_ENGINE_COMMIT=$C timeout 100 python3 -m sphinx -b gpucheck -c . -n \
  --keep-going -D nanobook_check_chapter=04 source /tmp/gpucheck > $R/gpucheck.log 2>&1
cp source/_records/04-paged-attention/*.json $R/records/; t gpucheck
wait
NANOVLLM_ENGINE_COMMIT=$C timeout 300 python3 -m nanovllm bench --suite --model /tmp/q06 --out $S \
  --hf-subset 64 --deadline 215 > $R/suite.log 2>&1; t suite
PYTHONPATH=/tmp/site:. timeout 170 python3 -m pytest -q -p no:cacheprovider --confcutdir=tests/engine -ra \
  tests/engine/test_kernels.py tests/engine/test_overlap.py tests/engine/test_generation_invariance.py \
  tests/engine/test_model_inputs.py tests/engine/test_faults.py > $R/tests.log 2>&1; t tests
tail -3 $R/tests.log
for v in "b plain --overlap-steps off" "a plain --overlap-steps off" "b gemv-off --gemv-max-rows 0"; do
  set -- $v
  NANOVLLM_ENGINE_COMMIT=$C timeout 60 python3 -m nanovllm bench --workload $1 --model /tmp/q06 \
    --out $R/ab --variant $2 $3 $4 > $R/ab-$1-$2.log 2>&1; tail -1 $R/ab-$1-$2.log; t "$1 $2"
done
