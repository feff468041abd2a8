"""What the CLI test scripts share: counted checks with a summary, running the tool, digests."""
import hashlib
import os
import subprocess
import sys


class Suite:
    def __init__(self, tool):
        self.tool = os.path.abspath(tool)
        self.passed, self.fails = 0, []

    def check(self, cond, what):
        """Counts cond; a false one is listed with `what` by finish()."""
        if cond:
            self.passed += 1
        else:
            self.fails.append(what)
        return cond

    def run(self, *args, env=None, timeout=300):
        """The tool with args (converted to str), output captured as text."""
        return subprocess.run([self.tool] + [str(x) for x in args], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})))

    def finish(self, prefix=""):
        print(f"{prefix}{self.passed} passed, {len(self.fails)} failed")
        for f in self.fails:
            print("FAIL:", f)
        sys.exit(1 if self.fails else 0)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
