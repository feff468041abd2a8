#!/usr/bin/env bash
# Every public header compiles alone as C11 and as C++, and includes no HDF5/CBLAS/LAPACKE header.
# usage: check_headers.sh INCLUDE_DIR CC CXX
set -u
inc="$1" cc="$2" cxx="$3" bad=0 n=0
for h in "$inc"/tdecomp.h "$inc"/tdecomp/*.h; do
    rel=${h#"$inc"/}
    n=$((n + 1))
    if grep -nE '#include *[<"](hdf5|H5[A-Za-z]*|cblas|lapacke|openblas)[^>"]*[>"]' "$h"; then
        echo "FAIL $rel includes a third-party header"; bad=1
    fi
    printf '#include "%s"\n' "$rel" > /tmp/tdhdr.$$.c
    "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$inc" /tmp/tdhdr.$$.c || { echo "FAIL $rel as C11"; bad=1; }
    cp /tmp/tdhdr.$$.c /tmp/tdhdr.$$.cpp
    "$cxx" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" /tmp/tdhdr.$$.cpp || { echo "FAIL $rel as C++"; bad=1; }
done
rm -f /tmp/tdhdr.$$.c /tmp/tdhdr.$$.cpp
[ "$n" -ge 8 ] || { echo "FAIL only $n headers found"; bad=1; }
echo "$n headers checked"
exit $bad
