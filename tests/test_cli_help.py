"""`r1omni --help` is complete: every argument of every command has help text, defaults are shown (serve's
read from ServeConfig), `train sft|grpo --help` lists the config keys read from the config dataclasses, each
command shows examples; and `r1omni --version` works."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

import pytest

import r1omni
from r1omni.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of the root and of every command and sub-command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from _parsers(command, (*path, name))


def _help_of(path: tuple[str, ...]) -> tuple[argparse.ArgumentParser, str]:
    parser = dict(_parsers(build_parser()))[path]
    return parser, parser.format_help()


def test_every_argument_of_every_command_has_help_text():
    missing, commands = [], 0
    for path, parser in _parsers(build_parser()):
        commands += 1
        parser.format_help()   # completes what a command reads from its config when its help is shown
        for action in parser._actions:
            name = "/".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"r1omni {' '.join(path)}: {name}")
            for choice in getattr(action, "_choices_actions", []):   # the sub-commands' one-line help
                if not choice.help:
                    missing.append(f"r1omni {' '.join(path)}: sub-command {choice.dest}")
    assert commands > 10 and not missing, missing


def test_every_command_shows_an_example_of_itself():
    for path, parser in _parsers(build_parser()):
        if parser.get_default("handler") is not None:   # a command that runs (not a group of them)
            assert f"r1omni {' '.join(path)} " in parser.format_help(), path


def test_defaults_are_shown_where_they_say_something():
    text = " ".join(_help_of(("predict",))[1].split())   # as one line: argparse wraps where the width says
    assert "(default: 4)" in text and "(default: timelines)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_serve_shows_servconfig_defaults_without_passing_them():
    """ServeConfig states each default once; the flags stay SUPPRESS (nothing the user did not give
    reaches the server), and `serve --help` shows them read from ServeConfig."""
    from r1omni.serve.config import MIB, ServeConfig

    serve, _ = _help_of(("serve",))
    shown = {action.dest: action.help for action in serve._actions}
    for field in dataclasses.fields(ServeConfig):
        dest, default = field.name, field.default
        if dest == "max_upload_bytes":
            dest, default = "max_upload_mb", default / MIB
        if default is None:   # a flag may say what None means there ("default: system temp")
            assert "default" in shown[dest], (dest, shown[dest])
        else:
            assert f"default: {default}" in shown[dest] or f"default {default}" in shown[dest], (dest, shown[dest])
    assert not set(vars(build_parser().parse_args(["serve", "--model", "m"]))) & {f.name for f in
                                                                               dataclasses.fields(ServeConfig)}


@pytest.mark.parametrize("recipe", ["sft", "grpo"])
def test_train_help_lists_every_config_key(recipe):
    from r1omni.cli import _config_class
    from r1omni.yamlconfig import config_keys

    _, text = _help_of(("train", recipe))
    keys = config_keys(_config_class(recipe))
    assert len(keys) > 20
    for key in keys:
        assert f"\n  {key.key} ({key.type}; " in text, key.key


def test_the_key_list_follows_the_config_class(monkeypatch):
    """The list is generated: a field added to the config appears with its type, default and docstring."""
    import r1omni.cli as cli
    from r1omni.train.sft import SFTConfig

    @dataclasses.dataclass
    class Grown(SFTConfig):
        new_knob: int = 3
        """Turns the new knob."""

    monkeypatch.setattr(cli, "_config_class", lambda recipe: Grown)
    _, text = _help_of(("train", "sft"))
    assert "\n  new_knob (int; default 3)\n      Turns the new knob.\n" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"r1omni {r1omni.__version__}\n"


def test_help_of_the_command_and_of_predict_imports_neither_torch_nor_the_server():
    """What makes `r1omni --help` instant: heavy modules load only for the help of serve and train."""
    code = ("import sys; from r1omni.cli import build_parser; p = build_parser(); p.format_help(); "
            "[c.format_help() for a in p._actions if hasattr(a, 'choices') and isinstance(a.choices, dict) "
            "for n, c in a.choices.items() if n not in ('serve', 'train')]; "
            "print(sorted(m for m in ('torch', 'transformers', 'r1omni.serve.config') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
