import sys

try:
    from pyapprox.cli import main
except KeyboardInterrupt:  # Ctrl-C during start-up imports
    print("pyapprox: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
