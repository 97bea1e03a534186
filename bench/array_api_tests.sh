#!/usr/bin/env bash
# The data-apis array API test suite (https://github.com/data-apis/array-api-tests, not a PyPI
# package) on gradc's namespace, gradc/array_api.py. Not part of CI: it draws random cases with
# Hypothesis. Usage: bench/array_api_tests.sh [DIR] (a checkout, cloned there if missing).
#
# Run of 2026-12-05 (tag 2025.05.23, --max-examples=5, 2-core AMD, final code of that session):
# 155 passed, 20 failed, 45 skipped in 225 s. 19 failures are functions gradc does not implement
# (bitwise_and/or/xor/invert/left_shift/right_shift, copysign, nonzero, searchsorted, linalg.cross/
# eigh/eigvalsh/matrix_power/matrix_rank/pinv/qr/svd/svdvals, vecdot on complex input); the one
# real gap, tensordot summing over a zero-size axis, was fixed after the run (test in
# tests/test_array_api.py; test_tensordot then passed alone). The suite's arrays come from the
# namespace's creation functions, which are NumPy arrays outside a transform: it checks gradc's
# functions on NumPy inputs, the same code a trace runs (tests/test_array_api.py checks traced
# values against array-api-strict in CI).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-${TMPDIR:-/tmp}/array-api-tests}"
if [ ! -d "$DIR" ]; then
    git clone --branch 2025.05.23 --recursive https://github.com/data-apis/array-api-tests "$DIR"
fi
python -m pip install -q -r "$DIR/requirements.txt"
cd "$DIR"
export ARRAY_API_TESTS_MODULE=gradc.array_api ARRAY_API_TESTS_VERSION=2023.12
export ARRAY_API_TESTS_SKIP_DTYPES=complex64,complex128,int8,int16,uint8,uint16,uint32,uint64
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
python -m pytest -q --max-examples="${MAX_EXAMPLES:-5}" --disable-deadline -p no:cacheprovider \
    array_api_tests/test_operators_and_elementwise_functions.py \
    array_api_tests/test_statistical_functions.py array_api_tests/test_searching_functions.py \
    array_api_tests/test_utility_functions.py array_api_tests/test_linalg.py \
    array_api_tests/test_manipulation_functions.py "${@:2}"
