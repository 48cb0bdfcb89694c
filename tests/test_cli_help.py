"""Every command's and sub-command's ``--help`` renders (argparse %-formats each help string only when the help is
printed, so a stray ``%`` in one breaks ``--help`` and nothing else), and every option's default is shown as the
parser would use it."""

import argparse

import pytest

from pyapprox.cli import COMMANDS, build_parser


def _parsers(parser, path=("pyapprox",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_help_renders():
    seen = []
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert text.startswith("usage: " + " ".join(path)), (path, text[:200])
        seen.append(path[1] if len(path) > 1 else None)
    assert {name for name, _, _ in COMMANDS} <= set(seen)


@pytest.mark.parametrize("name", [c[0] for c in COMMANDS])
def test_help_exits_zero(name, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([name, "--help"])
    assert exc.value.code == 0
    assert name in capsys.readouterr().out
