#!/usr/bin/env bash
# Quick mutation run (mutmut) on the core modules, each against only the test files that cover it.
#
#   scripts/mutation.sh                    # every module below
#   scripts/mutation.sh losses avts        # some of them
#   MUTATION_REV=main scripts/mutation.sh losses   # the tests (and code) of another commit
#
# Each module runs in its own scratch copy of the tracked files ($MUTATION_DIR/<rev>/<module>; the
# working tree is never touched) with a [tool.mutmut] section that mutates that module only, restricted to
# the functions listed below, and selects its test files (those missing at that commit are left out, so
# an older commit is measured on the tests it had). Prints one line per module: killed / mutants, the
# score, and the surviving mutants (`mutmut show NAME` inside the scratch copy shows each diff).
# Not part of every CI run: minutes per module on two cores.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
MUTMUT=${MUTMUT:-$(dirname "$PY")/mutmut}
REV=${MUTATION_REV:-}
DIR=${MUTATION_DIR:-${TMPDIR:-/tmp}/avssl-mutation}
CHILDREN=${MUTATION_CHILDREN:-2}
export AVSSL_SHARED_DIR=${AVSSL_SHARED_DIR:-$REPO/../shared} OMP_NUM_THREADS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

# module | file to mutate | mutant-name patterns (fnmatch; * = the whole file) | covering test files (or
# file::test where the rest of a file cannot run under mutmut, e.g. it needs dvc.yaml, which the mutants
# folder lacks)
MODULES="
losses|avssl_core/losses.py|*|tests/test_methods.py tests/test_cmac.py tests/test_catches_methods.py
avts|avssl_core/methods/avts.py|*training_step* *threshold* *track_distances* *pair_spec*|tests/test_methods.py tests/test_catches_methods.py
avc|avssl_core/methods/avc.py|*training_step* *correspondence_probability* *pair_spec*|tests/test_methods.py tests/test_catches_methods.py
cmac|avssl_core/methods/cmac.py|*training_step* *evaluation_step* *_instances* *_contrastive* *_within_positive* *_instance_top1* *after_optimizer_step*|tests/test_cmac.py tests/test_catches_methods.py tests/test_catches_cmac.py
memory_bank|avssl_core/models/memory_bank.py|*|tests/test_cmac.py tests/test_catches_methods.py
sampling|avssl_core/pretext/sampling.py|*|tests/test_catches_sampling.py
windows|avssl_core/pretext/windows.py|*|tests/test_pretext.py tests/test_eval_tasks.py tests/test_localization.py
curriculum|avssl_core/pretext/spec.py|*|tests/test_pretext.py tests/test_methods.py tests/test_catches_curriculum.py
expectations|avssl_core/data/expectations.py|*checks* *build_suite* *add_check_columns* *_missing_properties* *_first_copies* *_num* *_failures_by_row* *_raised_exception*|tests/test_catches_expectations.py
retrieval|avssl_core/eval/retrieval.py|*|tests/test_eval_downstream.py tests/test_catches_retrieval.py
intervals|avssl_core/eval/intervals.py|*|tests/test_intervals.py tests/test_catches_intervals.py tests/test_catches_statistics.py
frozen_probe|avssl_core/eval/frozen_probe.py|*|tests/test_frozen_probe.py tests/test_catches_statistics.py
label_draw|avssl_core/eval/action.py|*labelled_subset*|tests/test_eval_downstream.py::test_labelled_subset_keeps_whole_source_videos_up_to_k_per_class tests/test_catches_statistics.py
localization|avssl_core/eval/localization.py|*binarize* *iou* *success_metrics* *box_mask* *centre_box_map* *crop_box*|tests/test_localization.py tests/test_catches_localization.py
"

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=($(echo "$MODULES" | awk -F'|' 'NF {print $1}'))

for name in "${wanted[@]}"; do
  line=$(echo "$MODULES" | awk -F'|' -v n="$name" '$1 == n')
  [ -n "$line" ] || { echo "mutation.sh: unknown module '$name'" >&2; exit 2; }
  IFS='|' read -r _ file patterns tests <<<"$line"
  work="$DIR/${REV:-worktree}/$name"
  rm -rf "$work" && mkdir -p "$work"
  if [ -n "$REV" ]; then
    git -C "$REPO" archive "$REV" | tar -x -C "$work"
  else
    (cd "$REPO" && git ls-files -z | xargs -0 cp --parents -t "$work")
  fi
  present=()
  for t in $tests; do [ -f "$work/${t%%::*}" ] && present+=("$t"); done  # a file, or file::test
  # This module's [tool.mutmut] replaces any the copied pyproject.toml has (TOML allows one table).
  "$PY" - "$work/pyproject.toml" "$file" "${present[@]}" <<'EOF'
import json, re, sys
path, file, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", open(path).read())
text += ("\n[tool.mutmut]\n"
         'source_paths = ["avssl_core"]\n'
         f"only_mutate = {json.dumps([file])}\n"
         # The end-to-end tests (stage runs, servers) take minutes each: too slow to rerun per mutant. Tests
         # run in file order (not pytest-randomly's), so a file that puts its fast tests first kills most
         # mutants before reaching its slow ones (-x stops at the first failure).
         'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-n", "0", "-m", "not slow", "-q", "-x"]\n'
         f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")
open(path, "w").write(text)
EOF
  names=()
  if [ "$patterns" != "*" ]; then
    module=${file%.py}; module=${module//\//.}
    for p in $patterns; do names+=("$module.$p"); done
  fi
  log="$work/mutmut.log"
  (cd "$work" && "$MUTMUT" run --max-children "$CHILDREN" "${names[@]}" >"$log" 2>&1) \
    || { echo "$name: mutmut failed, see $log" >&2; tail -5 "$log" >&2; continue; }
  (cd "$work" && "$MUTMUT" results --all true 2>/dev/null) | "$PY" -c '
import sys, fnmatch
name, patterns = sys.argv[1], sys.argv[2].split()
rows = [line.strip().rsplit(": ", 1) for line in sys.stdin if ": " in line]
rows = [(m, s) for m, s in rows if any(fnmatch.fnmatch(m, "*" + p) for p in patterns)]
killed = sum(s in ("killed", "timeout") for _, s in rows)
survived = [m for m, s in rows if s not in ("killed", "timeout")]
score = killed / len(rows) if rows else float("nan")
print(f"{name}: {killed}/{len(rows)} killed, score {score:.1%}")
for m, s in rows:
    if s not in ("killed", "timeout"):
        print(f"  {s}: {m}")
' "$name" "$patterns"
done
