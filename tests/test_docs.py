"""The commands README.md and docs/ show: each names a real command and real flags, and the
export -> predict -> serve -> curl walk of the README runs as written.

Every ```bash block of README.md and docs/*.md is read. A `kzoo ...` or
`python -m kzoo.recipes.NAME ...` line must name an existing (sub)command, and every
`--flag` on it must be one that command accepts (its own `--help` text lists it). The
commands that train for minutes or need the network are run elsewhere: the recipes by
tests/recipes/ (reduced schedules), the upstream downloads up to the network by
tests/hub/ and tests/data/.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)


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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(line, cwd, **kw):
    """One README line through the shell, as a user pastes it."""
    return subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)


def test_readme_export_predict_serve_and_curl_run_as_written(tmp_path):
    """The README's "Export and serve" blocks, line by line, in a fresh folder (the server's
    REST/gRPC ports are free ones instead of 8501/8500, so parallel tests cannot collide)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Export and serve", 1)[1].split("\n## ", 1)[0]
    lines = [l for b in FENCE.findall(section) for l in b.splitlines() if l.strip()
             and not l.startswith("pip install")]
    export, predict, serve, make_request, curl = lines
    assert export.startswith("kzoo export") and serve.startswith("kzoo serve")
    for line in (export, predict):
        done = _run(line, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "samples").glob("*.png"))) == 8
    rest, grpc = _free_port(), _free_port()
    command = shlex.split(serve, comments=True) + ["--port", str(rest), "--grpc-port", str(grpc)]
    server = subprocess.Popen([sys.executable, "-m", "kzoo.cli", *command[1:]], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{rest}/v1/models/cgan-digits", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read()[-2000:]
                time.sleep(0.5)
        assert _run(make_request, tmp_path).returncode == 0
        answer = _run(curl.replace("127.0.0.1:8501", f"127.0.0.1:{rest}"), tmp_path)
        assert answer.returncode == 0, answer.stderr
        image = json.loads(answer.stdout)["predictions"][0]
        assert len(image) == 32 and len(image[0]) == 32  # one 32x32 digit
    finally:
        server.terminate()
        server.wait(timeout=30)


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
