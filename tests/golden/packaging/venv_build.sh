set -euo pipefail
final=/home/me/.slurm_magics/venvs/tiny-project-ffffffffffffffff
if [ -x "$final/bin/python" ]; then echo venv:reused; exit 0; fi
mkdir -p "$(dirname "$final")"
tmp="$final.tmp-$$-$RANDOM"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv --without-pip --system-site-packages "$tmp"
purelib=$("$tmp/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
python3 -c 'import site; print(*site.getsitepackages(), sep=chr(10))' > "$purelib/_slurm_magics_base.pth"
python3 -m pip install --quiet --disable-pip-version-check --target "$purelib" --no-compile --no-deps --no-index /home/me/.slurm_magics/wheels/tiny_project-0.1-py3-none-any.whl
if mv -T "$tmp" "$final" 2>/dev/null; then trap - EXIT; echo venv:built; else echo venv:reused; fi
