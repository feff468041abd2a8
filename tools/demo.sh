#!/usr/bin/env bash
# The main job: installs what is missing, builds, and compresses the demo model shipped in
# tests/data for its output on its own training data (calibration statistics from
# tdecomp.torch.calibrate), next to the data-free decomposition at the same ranks: per-layer
# tables, every chain recomposed from the written files by `verify` (with the output error on the
# data), and the test accuracy of both without fine-tuning, then after 3 epochs of fine-tuning.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
td_install_deps python3-torch python3-sklearn
td_configure build-release --buildtype=release
ninja -C build-release >/dev/null
tool=build-release/tools/tdecomp-tool/tdecomp-tool
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== tdecomp-tool inspect tests/data/demo.torch.h5"
"$tool" inspect tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json | sed -n '1,7p'
echo
echo "== calibration statistics of the training split (tdecomp.torch.calibrate)"
/usr/bin/python3 tools/examples/calibrate_demo.py tests/data/demo.torch.h5 "$work/stats.h5"
echo
echo "== tdecomp-tool decompose tests/data/demo.torch.h5 --rank-ratio 0.5 --calibration stats.h5 (data-aware)"
"$tool" decompose tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json \
    --rank-ratio 0.5 --calibration "$work/stats.h5" -o "$work/demo.aware.h5" --report "$work/report.json"
echo
echo "== tdecomp-tool decompose tests/data/demo.torch.h5 --rank-ratio 0.5 (data-free, for comparison)"
"$tool" decompose tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json \
    --rank-ratio 0.5 -o "$work/demo.decomposed.h5"
echo
echo "== tdecomp-tool verify --calibration (chains recomposed from the written file, output error on the data)"
"$tool" verify tests/data/demo.torch.h5 "$work/demo.aware.h5" --calibration "$work/stats.h5"
echo
echo "== test accuracy (PyTorch, no fine-tuning): original, data-aware, data-free"
/usr/bin/python3 tools/examples/demo_model.py tests/data/demo.torch.h5 "$work/demo.aware.h5" "$work/demo.decomposed.h5"
echo
echo "== data-free, fine-tuned 3 epochs (tools/examples/finetune.py: the same decomposition, then training)"
/usr/bin/python3 tools/examples/finetune.py --tool "$tool" --rank-ratio 0.5 2>/dev/null
