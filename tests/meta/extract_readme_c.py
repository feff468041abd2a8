#!/usr/bin/python3
"""Writes the first ```c block of a Markdown file (docs/library.md's example) to OUT; fails if there is none.
usage: extract_readme_c.py FILE.md OUT.c"""
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^```c\n(.*?)^```", text, re.S | re.M)
if not m:
    sys.exit("extract_readme_c: no ```c block in " + sys.argv[1])
open(sys.argv[2], "w").write(m.group(1))
