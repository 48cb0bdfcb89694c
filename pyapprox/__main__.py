import os
import signal
import sys


def _startup_sigint(signum, frame):
    """Ctrl-C while the interpreter imports pyapprox: nothing is written yet, so report it and leave at once.
    (A KeyboardInterrupt raised inside a C extension's start-up can surface as an ImportError, or be swallowed
    by a callback whose exceptions are ignored; exiting here avoids both.)"""
    os.write(2, b"pyapprox: interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _startup_sigint)
_cli = None
try:
    import pyapprox.cli as _cli

    rc = _cli.console()
except KeyboardInterrupt:  # Ctrl-C outside main's own handler
    if _cli is None or not _cli.interrupt_reported():
        print("pyapprox: interrupted", file=sys.stderr)
    if _cli is None:
        raise SystemExit(130) from None
    _cli.exit_interrupted()
raise SystemExit(rc)
