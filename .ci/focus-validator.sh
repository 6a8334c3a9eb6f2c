#!/usr/bin/env bash
# Create (idempotently) a dedicated venv holding the FinOps Foundation's focus-validator.
#
#   .ci/focus-validator.sh            -> prints the venv path on stdout (last line)
#
# focus-validator 2.2.1 needs Python >= 3.12 and pins numpy<2; numpy 1.26 ships wheels only up to
# CPython 3.12, so 3.12 is preferred over 3.13 (3.13 would have to build numpy 1.26 from source).
# pyarrow is capped below 22 (brief: pyarrow<22).
# Env: FOCUS_VALIDATOR_VENV (default <repo>/.venv-focus-validator).
# Exit codes: 0 ok, 3 no Python >= 3.12 found, other = install failure.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FOCUS_VALIDATOR_VENV:-$repo_root/.venv-focus-validator}"
spec="focus-validator==2.2.1 pyarrow<22"
stamp="$venv/.focus-validator-stamp"

# Quick no-op path: stamp matches and the venv's interpreter still runs.
if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" && -x "$venv/bin/python" ]] \
    && "$venv/bin/python" -c 'import focus_validator' >/dev/null 2>&1; then
    echo "$venv"
    exit 0
fi

usable() {  # usable CMD -> true when CMD runs and is CPython >= 3.12
    "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

python=""
# Prefer the lowest minor >= 12 (numpy<2 has no wheels past 3.12). pyenv shims for python3.1x
# are on PATH but fail unless that version is selected, so every candidate is executed.
for minor in 12 13 14 15 16 17 18 19; do
    candidates=("python3.$minor")
    for p in /root/.pyenv/versions/3."$minor".*/bin/python3."$minor"; do
        [[ -x "$p" ]] && candidates+=("$p")
    done
    for c in "${candidates[@]}"; do
        if command -v "$c" >/dev/null 2>&1 && usable "$c"; then
            python="$(command -v "$c")"
            break 2
        fi
    done
done

if [[ -z "$python" ]]; then
    {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!! focus-validator needs Python >= 3.12, and none was found."
        echo "!! Looked for: python3.12 .. python3.19 on PATH and"
        echo "!!   /root/.pyenv/versions/3.1[2-9]*/bin/python3.1*"
        echo "!! Install one (e.g. 'pyenv install 3.12') and re-run $0."
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 3
fi

# Serialise concurrent builders (e.g. pytest-xdist workers), then re-check under the lock.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/focus-validator-$(printf %s "$venv" | cksum | cut -d' ' -f1).lock"
    flock 9
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]] \
        && "$venv/bin/python" -c 'import focus_validator' >/dev/null 2>&1; then
        echo "$venv"
        exit 0
    fi
fi

echo "focus-validator: building $venv with $python" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
# shellcheck disable=SC2086  # $spec is two requirement words on purpose
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $spec >&2
"$venv/bin/python" -c 'import focus_validator' >&2
echo "$spec" >"$stamp"
echo "$venv"
