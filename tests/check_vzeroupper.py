#!/usr/bin/env python3
"""Every function in a binary that touches ymm or zmm registers must clear
their upper halves (vzeroupper) before it returns or tail-calls through a
pointer. Without it, the SSE code of the callers runs with dirty upper state,
which costs more than half the speed of short GEMM calls on some processors
(AMD Zen 3 measured). GCC omits vzeroupper silently, e.g. when a function
takes a 256-bit vector argument, so the built code is checked here.

usage: check_vzeroupper.py BINARY...   (exits 1 naming the functions)"""
import re
import subprocess
import sys

EXIT = re.compile(r"\t(ret|jmp\s+\*)")
ANY_JUMP = re.compile(r"\t(ret|jmp)")


def offenders(path):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                         capture_output=True, text=True, check=True).stdout
    for block in re.split(r"\n(?=[0-9a-f]+ <)", out):
        head = re.match(r"[0-9a-f]+ <([^>]+)>:", block)
        if not head or ("ymm" not in block and "zmm" not in block):
            continue
        insns = [line for line in block.split("\n") if "\t" in line]
        for i, line in enumerate(insns):
            if not EXIT.search(line):
                continue
            # Walk back along the straight-line code before the exit: a
            # vector instruction before any vzeroupper leaves dirty state.
            for prev in reversed(insns[:i]):
                if "vzeroupper" in prev or ANY_JUMP.search(prev):
                    break
                if "ymm" in prev or "zmm" in prev:
                    yield head.group(1), line.strip()
                    break


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    bad = [(p, f, at) for p in paths for f, at in offenders(p)]
    for p, f, at in bad:
        print(f"{p}: {f} exits with dirty upper vector state at {at}",
              file=sys.stderr)
    if not bad:
        print(f"vzeroupper before every exit of vector code in "
              f"{', '.join(paths)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
