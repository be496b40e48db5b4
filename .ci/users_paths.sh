#!/usr/bin/env bash
# CI, the users' paths: build the wheel and the sdist, install the wheel (with the notebook extra) into a fresh venv,
# and run the course from a temporary folder as a student would; then a smoke test on the oldest and newest Pythons.
# Called by .ci/run with the CI venv active; prints the time of each step. Exit non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gconv-ci-users.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step_start=0
begin() { step_start=$SECONDS; echo "ci-users: $1"; }
end() { echo "ci-users: $1 took $((SECONDS - step_start)) s"; }

begin "build the sdist and the wheel (python -m build: the wheel is built from the sdist)"
pip install --quiet build >"$WORK/pip-build.log" 2>&1 || { cat "$WORK/pip-build.log"; exit 1; }
python -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/*.whl)
SDIST=$(ls "$WORK"/dist/*.tar.gz)
echo "ci-users: built $(basename "$WHEEL") and $(basename "$SDIST")"
end "build"

begin "fresh venv, pip install the wheel with the notebook extra"
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL[notebook]" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
end "install"

# From here on the installed copy only: another folder, the venv's own PATH, no GCONV_* settings of the caller.
STUDENT="$WORK/student"
mkdir -p "$STUDENT"
cd "$STUDENT"
for name in $(env | grep -o '^GCONV_[A-Z_]*' || true); do unset "$name"; done
run() { env PATH="$WORK/venv/bin:$PATH" "$@"; }

begin "gconv-edu --version, lessons 02 --fast (figures into ./figures)"
run gconv-edu --version
run python -c "import gconv_edu, sys; p = gconv_edu.__file__; print(p); sys.exit('site-packages' not in p)"
run gconv-edu lessons 02 --fast >"$WORK/lesson02.log" || { tail -40 "$WORK/lesson02.log"; exit 1; }
tail -3 "$WORK/lesson02.log"
for figure in 02_group_connections.png 02_filter_slabs.png 02_block_diagonal_weight.png; do
    test -s "figures/$figure" || { echo "ci-users: figures/$figure missing in $STUDENT" >&2; exit 1; }
done
echo "ci-users: figures: $(ls figures | tr '\n' ' ')"
end "lessons"

begin "gconv-edu course, then grade a copied stub (0 marks, no crash; --self-check needs a checkout)"
run gconv-edu course mycourse
STUB=$(ls mycourse/exercises/ex1_*.py | head -1)
run gconv-edu grade "$STUB" --json grade.json | tail -5
run python -c "
import json, sys
r = json.load(open('grade.json'))
print('ci-users: stub score', r['score'], '/', r['max_score'])
sys.exit(0 if r['score'] == 0 and r['max_score'] > 0 and r['exercises'] else 1)"
set +e
run gconv-edu grade --self-check >"$WORK/selfcheck.log" 2>&1
status=$?
set -e
echo "ci-users: grade --self-check from the wheel exits $status: $(head -1 "$WORK/selfcheck.log")"
test "$status" -eq 2 || { cat "$WORK/selfcheck.log"; exit 1; }
end "grade"

begin "a lesson executed as a notebook alone in an empty folder, inline images counted"
run gconv-edu lessons 02 --notebooks nb
cd nb
GCONV_LESSONS_FAST=1 run jupyter nbconvert --to notebook --execute --inplace 02_channels_into_groups.ipynb \
    >"$WORK/nbconvert.log" 2>&1 || { tail -40 "$WORK/nbconvert.log"; exit 1; }
run python -c "
import json, pathlib, sys
nb = json.load(open('02_channels_into_groups.ipynb'))
images = sum('image/png' in o.get('data', {}) for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []))
saved = sorted(p.name for p in pathlib.Path('figures').glob('*.png'))
print('ci-users: notebook 02:', images, 'inline images;', len(saved), 'figures in ./figures:', saved)
sys.exit(0 if images == len(saved) == 3 else 1)"
cd "$STUDENT"
end "notebook"

# The oldest and newest supported Pythons, where pyenv has them: wheel install, --version, lesson 01.
for version in 3.10 3.13; do
    begin "smoke test on Python $version"
    interpreter=$(ls -d /root/.pyenv/versions/"$version".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$interpreter" ] || ! "$interpreter" -c "" 2>/dev/null; then
        echo "ci-users: SKIP Python $version: not installed here (pyenv versions has none)"
        continue
    fi
    venv="$WORK/venv$version"
    "$interpreter" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    if ! "$venv/bin/python" -m pip install --quiet "$WHEEL" >"$WORK/pip$version.log" 2>&1; then
        if grep -Eqi "(no matching distribution|could not find a version).*(numpy|numba|llvmlite)" "$WORK/pip$version.log"; then
            echo "ci-users: SKIP Python $version: $(grep -Ei 'no matching distribution|could not find a version' \
                "$WORK/pip$version.log" | head -1)"
            continue
        fi
        cat "$WORK/pip$version.log"
        exit 1
    fi
    mkdir -p "$WORK/smoke$version"
    (
        cd "$WORK/smoke$version"
        "$venv/bin/gconv-edu" --version
        "$venv/bin/gconv-edu" lessons 01 --fast >"$WORK/smoke$version.log" || { tail -30 "$WORK/smoke$version.log"; exit 1; }
        test -s figures/01_sliding_window.png
        echo "ci-users: Python $version ($("$venv/bin/python" -V)): lesson 01 ok, $(ls figures)"
    )
    end "smoke test on Python $version"
done
cd "$ROOT"
echo "ci-users: all users' paths passed"
