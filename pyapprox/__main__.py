import sys

try:
    from pyapprox.cli import console, exit_interrupted
except KeyboardInterrupt:  # Ctrl-C during start-up imports
    print("pyapprox: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

try:
    rc = console()
except KeyboardInterrupt:  # Ctrl-C between main's return and the exit
    exit_interrupted()
raise SystemExit(rc)
