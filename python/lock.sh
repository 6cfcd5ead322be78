#!/usr/bin/env bash
# Regenerates requirements.lock from requirements.in with a pinned uv, in a throwaway venv.
# The lock is universal (markers for each platform and Python >= 3.11) and carries a sha256 for
# every distribution, so `pip install --require-hashes --no-deps -r requirements.lock` installs
# exactly these files on a CPU laptop and a GPU node alike. See README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="$(mktemp -d)"
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool/venv"
"$tool/venv/bin/pip" install --quiet uv==0.13.8
cd "$here"
UV_CUSTOM_COMPILE_COMMAND="python/lock.sh" "$tool/venv/bin/uv" pip compile requirements.in \
  --excludes excludes.txt --universal --python-version 3.11 --generate-hashes \
  --output-file requirements.lock "$@"
