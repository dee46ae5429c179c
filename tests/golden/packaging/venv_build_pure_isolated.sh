set -euo pipefail
final=/home/me/.slurm_magics/venvs/tiny-project-eeeeeeeeeeeeeeee
if [ -x "$final/bin/python" ]; then echo venv:reused; exit 0; fi
mkdir -p "$(dirname "$final")"
tmp="$final.tmp-$$-$RANDOM"
trap 'rm -rf "$tmp"' EXIT
/opt/python3.11/bin/python3 -m venv --without-pip "$tmp"
purelib=$("$tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$tmp/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' /home/me/.slurm_magics/wheels/tiny_project-0.2-py3-none-any.whl "$purelib"
/opt/python3.11/bin/python3 -m pip install --quiet --disable-pip-version-check --target "$purelib" --no-compile cloudpickle==3.1.1
if mv -T "$tmp" "$final" 2>/dev/null; then trap - EXIT; echo venv:built; else echo venv:reused; fi
