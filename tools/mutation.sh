#!/usr/bin/env bash
# Mutation testing of the core numeric code with mutmut 2.x (a check of the tests, not part of CI).
#
#   pip install 'mutmut==2.5.1'        # into your own venv (not a project dependency)
#   tools/mutation.sh [module ...]     # modules: metrics losses evaluate train cache (default: all)
#
# mutmut 2 edits the mutated file in place, so this works on a scratch copy of the tree
# ($MUT_DIR, default /tmp/vtrbench-mutation/<module>) and never touches the checkout. Each module
# is mutated with only its own tests (pytest -x, one thread). train.py and cache.py are limited to
# the training loop / schedule and the part assembly (tools/mutation_scope.py marks the other lines
# "# pragma: no mutate" in the scratch copy). MUT_TYPES_OFF (default "string,fstring") names
# mutmut mutation types not generated: the text of messages is not what these tests pin (the tests
# check the error type and the file/option it names). The summary is kept in $MUT_DIR/<module>.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${MUT_DIR:-/tmp/vtrbench-mutation}"
off="${MUT_TYPES_OFF-string,fstring}"
export OMP_NUM_THREADS=1
declare -A paths=(
  [metrics]="vtrbench/metrics.py"
  [losses]="vtrbench/losses/"
  [evaluate]="vtrbench/evaluate.py"
  [train]="vtrbench/train.py"
  [cache]="vtrbench/cache.py"
)
declare -A scope=(
  [train]="fit lr_lambda"
  [cache]="assemble _copy_parts missing_parts part_is_valid Manifest.chunks"
)
declare -A tests=(
  [metrics]="tests/test_metrics.py"
  [losses]="tests/test_losses.py"
  [evaluate]="tests/test_evaluate.py"
  [train]="tests/test_train_loop.py -k 'not val_fraction'"
  [cache]="tests/test_refusals.py -k 'assemble or manifest'"
)
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=(metrics losses evaluate train cache)
for m in "${modules[@]}"; do
  dir="$work/$m"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$root" && tar --exclude=.venv --exclude=.git --exclude='*.pyc' -cf - vtrbench tests benchmarks tools pyproject.toml) \
    | tar -xf - -C "$dir"
  (
    cd "$dir"
    export PYTHONPATH="$dir"  # import the scratch copy, not the checkout
    if [ -n "${scope[$m]:-}" ]; then python tools/mutation_scope.py "${paths[$m]}" ${scope[$m]}; fi
    disable=(); [ -n "$off" ] && disable=(--disable-mutation-types "$off")
    mutmut run --paths-to-mutate "${paths[$m]}" --tests-dir tests --simple-output --no-progress "${disable[@]}" \
      --runner "python -m pytest -x -q -p no:cacheprovider ${tests[$m]}" || true
    mutmut results > "$work/$m.txt" || true
  )
  echo "== $m"; cat "$work/$m.txt"
done
