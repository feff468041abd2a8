#!/usr/bin/python3
"""Every public function's comment in include/tdecomp/*.h says what a caller needs: for a
td_status function, its statuses (the word "Statuses" or the TD_E* codes it returns, or "as"
another function's); for every function, its cost ("O(", "Cost", "flops", "no allocation", "reads
only", ...) unless it is a trivial accessor (*_name, *_free, *_init, ... returning void, a string or
a number) or the header's preamble states one ("Cost:"); and each header states thread-safety (in
its preamble or per function). A declaration's comment is the block right above it, or the block
above a run of declarations it belongs to (a blank line ends a run).

usage: check_api_docs.py INCLUDE_DIR"""
import os, re, sys

DECL = re.compile(r'^TD_API\b(.*?)\b(td_\w+)\s*\(', re.S)
# A cost statement: "cost" as a word (not inside an identifier such as td_chain_cost), flops, O(...),
# memory or allocation, or what an I/O function reads ("reads only ...", "one pass").
COST = re.compile(r'O\(|(?<![\w])[Cc]osts?\b(?!_)|flops|[Nn]o allocation|[Ww]orkspace|allocates|one calloc|'
                  r'Memory|[Rr]eads only|[Oo]ne pass', re.S)
# A header preamble covers its functions' cost only with an explicit "Cost:" statement (a mention
# such as "the cost model" does not).
PREAMBLE_COST = re.compile(r'\bCosts?:')
STATUS = re.compile(r'Statuses|TD_E[A-Z]+|statuses as|[Ss]tatuses of|as td_\w+\b', re.S)


def blocks(text):
    """(comment, declarations) pairs: each TD_API declaration with the nearest comment above its run."""
    lines = text.split('\n')
    out, comment, run_comment, i = [], '', '', 0
    while i < len(lines):
        ln = lines[i]
        s = ln.strip()
        if s.startswith('/*'):
            buf = [ln]
            while '*/' not in lines[i]:
                i += 1
                buf.append(lines[i])
            comment = '\n'.join(buf)
            run_comment = comment
        elif s.startswith('TD_API'):
            buf = [ln]
            while ';' not in lines[i] and '{' not in lines[i]:
                i += 1
                buf.append(lines[i])
            decl = ' '.join(buf)
            out.append((run_comment, decl))
        elif s == '':
            run_comment = ''
        elif not s.startswith('#') and not s.startswith('TD_API'):
            run_comment = '' if not s.startswith('*') else run_comment
        i += 1
    return out


def main():
    inc = sys.argv[1]
    problems, n = [], 0
    for name in sorted(os.listdir(os.path.join(inc, 'tdecomp'))):
        path = os.path.join(inc, 'tdecomp', name)
        text = open(path).read()
        preamble = text.split('#ifndef', 1)[0]
        if not re.search(r'[Tt]hread-safe|[Tt]hread-safety|reentrant', text):
            problems.append(f'{name}: says nothing of thread-safety')
        for comment, decl in blocks(text):
            m = DECL.search(decl)
            if not m:
                continue
            n += 1
            fn = m.group(2)
            if not comment:
                problems.append(f'{name}: {fn} has no comment')
                continue
            if 'td_status' in m.group(1) and not STATUS.search(comment):
                problems.append(f'{name}: {fn} does not say its statuses')
            # the return type is matched whole ("const char *" ends in no word boundary)
            trivial = re.search(r'(?<!\w)(void|const char \*|int|double|size_t|uint64_t|td_method)(?!\w)', m.group(1)) and \
                re.search(r'_name$|_free$|_init$|_clear$|_same_shape$|^td_rng_|_path$|_threads$|_core$|_version$|_method$', fn)
            if not trivial and not COST.search(comment) and not PREAMBLE_COST.search(preamble):
                problems.append(f'{name}: {fn} does not say its cost')
    for p in problems:
        print('FAIL', p)
    print(f'{n} public functions checked, {len(problems)} problems')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
