#!/usr/bin/python3
"""Run the Python module's tests (python/tests) and print 'python: N passed, M failed, K skipped'.
NS_BIN names the normsharp program to test against (default ./normsharp). Writes the
counts to build/python/tests/result.txt for tests/summarize.sh."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
suite = unittest.defaultTestLoader.discover(os.path.join(here, "tests"), top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
passed = result.testsRun - failed - len(result.skipped)
out = os.path.join(os.path.dirname(here), "build", "python", "tests")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write(f"{passed} {failed} {len(result.skipped)}\n")
print(f"python: {passed} passed, {failed} failed, {len(result.skipped)} skipped")
sys.exit(1 if failed else 0)
