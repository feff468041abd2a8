#!/usr/bin/env bash
# The main job: installs what is missing, builds, decomposes the demo model shipped in
# tests/data, prints the per-layer table, recomposes every chain with `verify`, and reports the
# test accuracy before and after, and after 3 epochs of fine-tuning, when PyTorch is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
td_install_deps
td_configure build-release --buildtype=release
ninja -C build-release >/dev/null
tool=build-release/tools/tdecomp-tool/tdecomp-tool
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== tdecomp-tool inspect tests/data/demo.torch.h5"
"$tool" inspect tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json | sed -n '1,7p'
echo
echo "== tdecomp-tool decompose tests/data/demo.torch.h5 --rank-ratio 0.5"
"$tool" decompose tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json \
    --rank-ratio 0.5 -o "$work/demo.decomposed.h5" --report "$work/report.json"
echo
echo "== tdecomp-tool verify (chains recomposed from the written file)"
"$tool" verify tests/data/demo.torch.h5 "$work/demo.decomposed.h5"
if /usr/bin/python3 -c 'import torch, sklearn' 2>/dev/null; then
    echo
    echo "== test accuracy (PyTorch, no fine-tuning)"
    /usr/bin/python3 tools/examples/demo_model.py tests/data/demo.torch.h5 "$work/demo.decomposed.h5"
    echo
    echo "== fine-tuned 3 epochs (tools/examples/finetune.py: the same decomposition, then training)"
    /usr/bin/python3 tools/examples/finetune.py --tool "$tool" --rank-ratio 0.5 2>/dev/null
fi
