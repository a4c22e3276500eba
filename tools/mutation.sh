#!/usr/bin/env bash
# Mutation testing of the core numeric modules with mutmut 2.x (a check of the tests, not part of CI).
#
#   pip install 'mutmut==2.5.1'        # into your own venv
#   tools/mutation.sh [module ...]     # modules: metrics losses evaluate train cache (default: all)
#
# mutmut 2 edits the mutated file in place, so this works on a scratch copy of the tree
# ($MUT_DIR, default /tmp/vtrbench-mutation) and never touches the checkout. Each module is
# mutated with only its own tests (pytest -x, one thread); the summary of every module is
# printed at the end and kept in $MUT_DIR/<module>.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${MUT_DIR:-/tmp/vtrbench-mutation}"
export OMP_NUM_THREADS=1
declare -A paths=(
  [metrics]="vtrbench/metrics.py"
  [losses]="vtrbench/losses/"
  [evaluate]="vtrbench/evaluate.py"
  [train]="vtrbench/train.py"
  [cache]="vtrbench/cache.py"
)
declare -A tests=(
  [metrics]="tests/test_metrics.py"
  [losses]="tests/test_losses.py"
  [evaluate]="tests/test_evaluate.py"
  [train]="tests/test_train_loop.py tests/test_train.py"
  [cache]="tests/test_cache.py"
)
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=(metrics losses evaluate train cache)
for m in "${modules[@]}"; do
  dir="$work/$m"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$root" && tar --exclude=.venv --exclude=.git --exclude='*.pyc' -cf - vtrbench tests benchmarks pyproject.toml) \
    | tar -xf - -C "$dir"
  (
    cd "$dir"
    export PYTHONPATH="$dir"  # import the scratch copy, not the checkout
    mutmut run --paths-to-mutate "${paths[$m]}" --tests-dir tests --simple-output --no-progress \
      --runner "python -m pytest -x -q -p no:cacheprovider -p no:randomly ${tests[$m]}" || true
    mutmut results > "$work/$m.txt" || true
  )
  echo "== $m"; cat "$work/$m.txt"
done
