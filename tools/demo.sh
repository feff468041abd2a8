#!/usr/bin/env bash
# The main job: installs what is missing, builds, and decomposes the demo model shipped in
# tests/data (or, before the weight-file commands exist, runs the README's C example).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
td_install_deps
td_configure build-release --buildtype=release
ninja -C build-release >/dev/null
tool=build-release/tools/tdecomp-tool/tdecomp-tool
if "$tool" decompose --help >/dev/null 2>&1 && [ -f tests/data/demo.torch.h5 ]; then
    out=$(mktemp -d)/demo.decomposed.h5
    "$tool" decompose tests/data/demo.torch.h5 --layer-spec tests/data/demo.layer_spec.json \
        --rank-ratio 0.5 -o "$out"
    "$tool" verify tests/data/demo.torch.h5 "$out"
else
    ./build-release/tests/meta/readme_example
fi
