"""Prints what a program run by `observe` sees, then exits with the status it is given."""

import sys

print(f"probe name={__name__} argv0={sys.argv[0]} args={','.join(sys.argv[1:])}")
print(f"probe path0={sys.path[0]}")
sys.exit(int(sys.argv[1]))
