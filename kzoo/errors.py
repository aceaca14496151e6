"""The one exception type that the CLI turns into a single error line (exit 2), and the
argument parser every command line of kzoo uses."""

import argparse


class KzooError(ValueError):
    """A problem with what the user asked for: bad data, flag, preset or file."""


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are a `KzooError` instead of usage + exit.

    Every command line of kzoo (`kzoo ...`, `kzoo hub ...`, `python -m kzoo.recipes.NAME`)
    parses with it, so a bad argument ends the same way as any other bad input: one
    `error: PROG: message` line and exit status 2. Sub-parsers inherit the class.
    `--help` still prints the help and exits 0.

    Example:
    >>> p = ArgumentParser(prog="kzoo export")
    >>> _ = p.add_argument("--opset", type=int)
    >>> p.parse_args(["--opset", "x"])
    Traceback (most recent call last):
    kzoo.errors.KzooError: kzoo export: argument --opset: invalid int value: 'x'
    """

    def error(self, message):
        raise KzooError(f"{self.prog}: {message}")
