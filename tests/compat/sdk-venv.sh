#!/usr/bin/env bash
# The kubeflow-training Python SDK (the version Kubeflow 1.9 users have) in a venv of its own,
# with pytest, cached by version under ~/.cache/tfjob-operator/. Prints the venv's directory.
set -euo pipefail
sdk_version=1.9.4
venv="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator/venv-kubeflow-training-$sdk_version"
if [[ ! -x "$venv/bin/pytest" ]]; then
  echo "[sdk-venv] creating $venv (kubeflow-training==$sdk_version, pytest)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "kubeflow-training==$sdk_version" pytest pyyaml >&2
fi
echo "$venv"
