#!/usr/bin/env bash
# The library keeps no global mutable state and never exits, aborts or prints:
# no writable data symbols (nm types B/D/b/d/C) and no references to exit/abort/printf & co.
# usage: check_symbols.sh LIBTDECOMP_STATIC.a
set -u
lib="$1" bad=0
# Read-only after relocation (.data.rel.ro: const tables of pointers, where sanitizer builds put
# them) is not mutable state; objdump names each object's section.
data=$(objdump -t "$lib" 2>/dev/null | awk '$0 ~ / O / && $4 ~ /^\.(data|bss)/ && $4 !~ /^\.data\.rel\.ro/ {print $4, $NF}' |
    grep -v -E ' (__|\.)' )
if [ -n "$data" ]; then echo "FAIL writable data symbols:"; echo "$data"; bad=1; fi
calls=$(nm -u -A "$lib" 2>/dev/null | grep -E ' U (exit|_exit|abort|printf|puts|putchar|fprintf|vfprintf|perror|fputs|fwrite)$')
if [ -n "$calls" ]; then echo "FAIL forbidden calls:"; echo "$calls"; bad=1; fi
n=$(nm -A --defined-only "$lib" | grep -c ' T td_')
[ "$n" -ge 30 ] || { echo "FAIL only $n exported td_ functions found: wrong library?"; bad=1; }
echo "$n td_ functions; data symbols and forbidden calls checked"
exit $bad
