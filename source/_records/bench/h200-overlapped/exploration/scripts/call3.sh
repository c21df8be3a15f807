set -u
export PYTHONUNBUFFERED=1
start=$(date +%s); R=/tmp/r; mkdir -p $R
t() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a $R/times.txt; tar czf $OUT/results.tgz -C $R . ; }
PYTHONPATH=.:ab timeout 290 python3 ab/sweep3.py $R/sweep3.json > $R/sweep3.log 2>&1; t sweep
tail -4 $R/sweep3.log
