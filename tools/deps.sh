# Sourced by tools/demo.sh and tools/test.sh: installs the Debian packages tdecomp needs.
# As root, missing packages are installed with apt-get; otherwise the exact command is printed.
TD_PACKAGES="gcc g++ pkg-config meson ninja-build liblapacke-dev libopenblas-dev libhdf5-dev \
libjansson-dev check python3-numpy python3-h5py"
# Only the tests need these: valgrind, PyTorch + scikit-learn for the interop suite, clang and
# its sanitizer/libFuzzer runtime for the fuzz stage.
TD_TEST_PACKAGES="valgrind python3-torch python3-torchvision python3-sklearn clang libclang-rt-14-dev librsvg2-bin"

# td_install_deps [EXTRA PACKAGES...]
td_install_deps() {
    local missing="" p
    for p in $TD_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "tdecomp: missing Debian packages:$missing" >&2
        echo "tdecomp: run as root: apt-get update && apt-get install -y --no-install-recommends$missing" >&2
        return 1
    fi
    echo "tdecomp: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# td_configure DIR [meson options...]: configures DIR once, reconfigures if options changed.
td_configure() {
    local dir="$1"; shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}
