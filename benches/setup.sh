#!/usr/bin/env bash
# Installs what the benches compare against into a venv outside the repository:
# vllm-project/router (PyPI `vllm-router`). The benches find it there.
set -euo pipefail
venv="${HOME}/.cache/lora-router/bench-venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "vllm-router==0.1.17"
echo "vllm-router installed in $venv"
