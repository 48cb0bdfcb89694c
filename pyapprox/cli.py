"""The ``pyapprox`` console command.

Each sub-command lives in ``pyapprox/commands/<name>.py`` and defines ``configure(parser)``
and ``run(args) -> int``. Heavy imports (torch, numba) happen inside ``run`` so that
``pyapprox --help`` stays fast.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys

from pyapprox.errors import PyapproxError
from pyapprox.heap import keep_large_blocks

# (command, module under pyapprox.commands, one-line help)
COMMANDS = [
    ("lut", "lut", "derive, convert, list and characterise multiplier lookup tables"),
    ("hw", "hw", "hardware cost of a Verilog design from Yosys"),
    ("layers", "layers", "list the network's convolutions (kind, shape, MACs, short names)"),
    ("eval", "eval", "score float, exact-quantized and approximate networks on a depth data set"),
    ("compare", "compare", "any network (ONNX): deviation of exact-quantized and approximate versions per layer"),
    ("sweep", "sweep", "layer sensitivity and multiplier design-space sweeps"),
    ("search", "search", "choose a multiplier per layer within an accuracy budget"),
    ("report", "report", "one self-contained HTML page from a results store"),
    ("train", "train", "train densedepth_mbv2 on the synthetic indoor scenes"),
    ("finetune", "finetune", "approximation-aware fine-tuning through a plan's bit-exact arithmetic (ste or lut gradients)"),
    ("demo", "demo", "the main job on the embedded default model and data set"),
    ("power", "power", "energy per MAC and per inference from gate-level switching activity on real operand streams"),
    ("cosim", "cosim", "co-simulate the RTL MAC array with the quantized network on real layer data, bit for bit"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyapprox", description="From approximate-multiplier RTL to hardware-faithful CNN inference: "
                                     "LUTs from simulation, error and cost, approximate depth networks.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on an error, also print the tool output behind it (simulator, Yosys)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"pyapprox.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. User errors print one line and exit 2 (``-v`` adds the tool output behind them);
    Ctrl-C at any moment (start-up imports included) prints one line and exits 130, the shell's convention for
    an interrupt. An interrupt that a library swallowed (an import turning it into an ImportError, a callback
    whose exceptions are ignored) is still reported as one: the SIGINT handler records every Ctrl-C."""
    command, verbose = "pyapprox", False
    seen = [False]

    def on_sigint(signum, frame):
        seen[0] = True
        raise KeyboardInterrupt

    previous = None
    try:
        parser = build_parser()  # under `python -m pyapprox`, a Ctrl-C until here exits at once (__main__.py)
        args = parser.parse_args(argv)
        command, verbose = f"pyapprox {args.command}", args.verbose
        previous = _install_sigint(on_sigint)
        keep_large_blocks()  # large temporaries reused, not page-faulted afresh (pyapprox.heap)
        rc = int(args._run(args) or 0)
        if seen[0]:
            raise KeyboardInterrupt
        return rc
    except PyapproxError as exc:
        if seen[0]:
            return _interrupted(command)
        if verbose or not exc.detail:
            print(f"{command}: error: {exc}", file=sys.stderr)
        else:
            again = "pyapprox -v" + command[len("pyapprox"):]
            print(f"{command}: error: {exc.message} ({again} ... shows the tool's output)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(command)
    except Exception:
        if seen[0]:  # e.g. numpy's C start-up turns a Ctrl-C into an ImportError
            return _interrupted(command)
        raise
    finally:
        _install_sigint(previous)


INTERRUPTED = 130
_REPORTED = [False]  # main printed its "interrupted" line (a Ctrl-C outside main's try must still print one)


def _interrupted(command: str) -> int:
    print(f"{command}: interrupted", file=sys.stderr)
    _REPORTED[0] = True
    return INTERRUPTED


def _install_sigint(handler):
    """Install ``handler`` for SIGINT and return the previous one; a no-op (returning None) off the main thread
    or when ``handler`` is None."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (main called from a worker thread)
        return None


def interrupt_reported() -> bool:
    """Whether ``main`` already printed the one "interrupted" line of this process."""
    return _REPORTED[0]


def exit_interrupted() -> None:
    """Leave the process with status 130 after an interrupt, whatever the interpreter's own shutdown would do: a
    second Ctrl-C is ignored, exit handlers run, and the process ends at once (``os._exit``). A KeyboardInterrupt
    that landed inside an extension's start-up can otherwise make CPython end the process with SIGINT itself
    (status -2) after pyapprox had already reported it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe must not change the exit status
            pass
    try:
        atexit._run_exitfuncs()
    finally:
        os._exit(INTERRUPTED)


def console(argv: list[str] | None = None) -> int:
    """The console entry point (``pyapprox``, ``python -m pyapprox``): ``main``, ending the process with 130 on
    an interrupt (see ``exit_interrupted``). Tests call ``main`` itself, which returns."""
    rc = main(argv)
    if rc == INTERRUPTED:
        exit_interrupted()
    return rc


if __name__ == "__main__":
    raise SystemExit(console())
