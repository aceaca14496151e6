"""The commands README.md and docs/ show: each names a real command and real flags.

Every ```bash block of README.md and docs/*.md is read. A `kzoo ...` or
`python -m kzoo.recipes.NAME ...` line must name an existing (sub)command, and every
`--flag` on it must be one that command accepts (its own `--help` text lists it). The
commands themselves run in tests/test_doc_commands.py (the README's export -> predict ->
serve -> curl walk included).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shown_commands():
    """(page, command line) of every command in a bash block, comments and continuations joined."""
    out = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append((page.relative_to(REPO).as_posix(), line))
    return out


def words(line):
    """The words of the first command on `line` (before `&&`, `|`, `>`), comments dropped."""
    tokens = shlex.split(line, comments=True)
    cut = next((i for i, t in enumerate(tokens) if t in ("&&", "|", ">", ";", "||")), len(tokens))
    return tokens[:cut]


def kzoo_help(path):
    """The --help text of `kzoo PATH...` (e.g. ["hub", "convert"])."""
    from kzoo.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    assert e.value.code == 0, f"kzoo {' '.join(path)} --help failed"
    return buf.getvalue()


def recipe_help(name):
    from kzoo.recipes.config import parser
    from kzoo.recipes.registry import get_recipe

    return parser(get_recipe(name)).format_help()


def help_of(tokens):
    """`(help text, rest of the words)` of a kzoo command line, or None for other programs."""
    if tokens[:1] == ["kzoo"]:
        path = tokens[1:2]
        if path == ["hub"]:
            path = tokens[1:3]
        if path == ["train"]:
            return recipe_help(tokens[2]), tokens[3:]
        return kzoo_help(path), tokens[1 + len(path):]
    if tokens[:2] == ["python", "-m"] and tokens[2].startswith("kzoo.recipes."):
        return recipe_help(tokens[2].rsplit(".", 1)[1]), tokens[3:]
    return None


COMMANDS = shown_commands()


def test_the_pages_show_commands():
    kzoo_lines = [c for c in COMMANDS if help_of(words(c[1])) is not None]
    assert len(kzoo_lines) >= 15, kzoo_lines


@pytest.mark.parametrize("page,line", COMMANDS, ids=[f"{p}:{l[:40]}" for p, l in COMMANDS])
def test_each_shown_kzoo_command_names_real_flags(page, line):
    found = help_of(words(line))
    if found is None:
        return  # pip, curl, docker, tensorboard: not kzoo's
    text, rest = found
    flags = {t.split("=", 1)[0] for t in rest if t.startswith("--")}
    unknown = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text))
    assert not unknown, f"{page}: `{line}` uses {unknown}, which its --help does not list"


def test_a_wrong_flag_is_caught():
    text, rest = help_of(words("kzoo export cgan-digits --no-such-flag 3  # comment"))
    assert "--out" in text and rest == ["cgan-digits", "--no-such-flag", "3"]
    assert "--no-such-flag" not in text


def test_hub_page_tables_are_the_catalog():
    """docs/hub.md shows `kzoo hub list`'s cells for the shipped presets and every upstream entry
    with its provenance: both tables are what the catalog gives now."""
    from kzoo.hub import catalog

    page = (REPO / "docs" / "hub.md").read_text()
    entries = catalog.entries()
    assert catalog.table([e for e in entries if "upstream" not in e], markdown=True) in page
    assert catalog.upstream_table([e for e in entries if "upstream" in e]) in page
