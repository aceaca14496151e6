"""Every command README.md and docs/*.md show is run, as a user pastes it.

Each page's fenced ```bash / ```sh / ```console blocks (bash -e) and ```python blocks (python)
run in order in one fresh folder, so a later block finds what an earlier one wrote (an export,
a run directory, request.json). A `kzoo serve` line starts the server in the background on
free ports (the page's later `127.0.0.1:8501` / `:8500` point there) until the page ends.

What cannot run here is named, with its reason, and counted:
- `NOT_RUN`: one command (a shell line or a one-line Python statement) by its exact text,
  comment left out, so an edited or new command runs by default;
- `<!-- not run: REASON -->` just before a block skips the whole block.
Their number may not grow past `MAX_NOT_RUN` without this file saying so.

The commands run with `KZOO_HOME` in the folder (no user cache is read or written) and
`KZOO_OFFLINE=1` (a download nobody listed fails at once, naming the URL). Whatever the commands
create at the top of the folder must be ignored by the repository's .gitignore, so a user
who runs them in a checkout sees a clean `git status`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL, PYTHON = {"bash", "sh", "shell", "console"}, {"python", "py"}
BLOCK = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!--\s*not run:((?:(?!-->).)*)-->\s*\Z", re.DOTALL)

_NETWORK = "downloads published weights (no network here);"
NOT_RUN = {
    'pip install -e ".[cpu]" && python -m kzoo.recipes.pix2pix':
        "installs into the environment running the tests, then the main job trains for minutes; "
        "its quick preset is run reduced by tests/recipes/test_pix2pix.py",
    'pip install -e ".[test]" && python -m pytest -n 2 -q':
        "installs into the environment running the tests and runs the whole suite, this test "
        "included; .ci/run runs it",
    'pip install -e ".[cpu,serving]"':
        "installs into the environment running the tests (which has the serving extra)",
    "kzoo hub convert hf://google/ddpm-cifar10-32 --out presets/ddpm-cifar10":
        f"{_NETWORK} the hf:// path runs against a local server in tests/hub/test_hf.py and "
        "tests/hub/convert/test_convert.py",
    'g = kzoo.hub.load("cyclegan-horse2zebra")':
        f"{_NETWORK} the catalog download, pin and conversion run against a local server in "
        "tests/hub/convert/test_convert.py",
    'sr = kzoo.hub.load("realesrgan-x4plus")':
        f"{_NETWORK} tests/hub/convert/test_sr.py runs the catalog path against a local server",
    'g = kzoo.hub.load("facades_label2photo.pth#arch=unet_256")':
        "needs the authors' .pth file, downloaded (no network here); tests/hub/convert/ load "
        "small reference files the same way",
    'unet = kzoo.hub.load("hf://google/ddpm-cifar10-32")':
        f"{_NETWORK} tests/hub/convert/test_convert.py loads hf:// repositories from a local server",
    "kzoo hub convert horse2zebra.pth --reverse zebra2horse.pth --out presets/horse2zebra":
        "needs the authors' two .pth files (no network here); tests/hub/convert/test_convert.py "
        "converts small reference files with the same command",
    'kzoo export "horse2zebra.pth#arch=resnet_9blocks" --out export/':
        "needs the authors' .pth file (no network here); "
        "tests/hub/convert/test_convert.py exports a converted generator",
    "python -m kzoo.recipes.pix2pix --exact junyanz --init-from pix2pix-facades":
        f"{_NETWORK} tests/recipes/test_pix2pix.py runs this command as written against a local "
        "stand-in for the authors' host",
    "kzoo hub convert pix2pix-facades --mode authors --out presets/facades-authors":
        f"{_NETWORK} tests/hub/convert/test_convert.py converts in authors mode",
    "kzoo export pix2pix-facades --mode authors --out export/":
        f"{_NETWORK} tests/hub/convert/test_convert.py exports in authors mode",
    "kzoo hub convert checkpoint/550000.pt --out presets/ffhq-256":
        "needs the user's own rosinality StyleGAN2 checkpoint (none is published in the catalog); "
        "tests/hub/convert/test_stylegan2.py converts a reference-built one with this command",
    "kzoo export checkpoint/550000.pt --out export/":
        "needs the user's own rosinality StyleGAN2 checkpoint; "
        "tests/hub/convert/test_stylegan2.py exports and predicts a reference-built one",
    "python -m kzoo.recipes.stylegan2 --preset quick":
        "trains 8-10 minutes on a 2-core CPU (the figures beside it); "
        "tests/recipes/test_stylegan2.py runs the recipe at a reduced schedule",
    "docker compose -f serving/docker-compose.yml up":
        "needs a Docker engine and the tensorflow/serving image (not here); "
        "tests/serving/test_deploy.py checks the compose file",
}
MAX_NOT_RUN = 33  # occurrences in all pages (the pip serving line and the hf:// convert are
# shown twice; marked blocks: docs/latent.md's four 300-step projections, docs/export.md's
# OpenVINO lines (4), docs/benchmarks.md's paper-size runs (3) and its accelerator run (2: PyPI,
# then the device machine))


def strip_comment(line: str) -> str:
    """`line` without its trailing `# comment` (a `#` in quotes or inside a word stays)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


@dataclass
class Block:
    page: str
    line: int  # of the opening fence
    lang: str
    text: str
    not_run: str | None  # the reason of a `<!-- not run: ... -->` mark
    commands: list = field(default_factory=list)  # shell: one command a line, comments dropped


def blocks(page: Path) -> list[Block]:
    """The runnable fenced blocks of `page`, in order."""
    return parse(page.read_text(), page.relative_to(REPO).as_posix())


def parse(text: str, name: str) -> list[Block]:
    out = []
    for m in BLOCK.finditer(text):
        lang = m.group(1).lower()
        if lang not in SHELL | PYTHON:
            continue
        mark = MARK.search(text[:m.start()].rstrip() + "\n")
        block = Block(name, text[:m.start()].count("\n") + 1, lang,
                      m.group(2), mark.group(1).strip() if mark else None)
        if lang in SHELL:
            lines = block.text.replace("\\\n", " ").splitlines()
            if lang == "console":  # `$ command` lines; the others are its output
                lines = [l.strip()[2:] for l in lines if l.strip().startswith("$ ")]
            block.commands = [c for c in (strip_comment(l.strip()) for l in lines) if c]
        out.append(block)
    return out


def not_run_lines(block: Block) -> list[str]:
    """The commands of `block` that `NOT_RUN` names."""
    if block.lang in SHELL:
        return [c for c in block.commands if c in NOT_RUN]
    return [strip_comment(l.strip()) for l in block.text.splitlines()
            if strip_comment(l.strip()) in NOT_RUN]


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def test_skips_are_listed_with_reasons_and_do_not_grow():
    marked = [b for b in ALL_BLOCKS if b.not_run is not None]
    assert all(b.not_run for b in marked), [f"{b.page}:{b.line}" for b in marked if not b.not_run]
    listed = [c for b in ALL_BLOCKS if b.not_run is None for c in not_run_lines(b)]
    stale = sorted(set(NOT_RUN) - set(listed))
    assert not stale, f"NOT_RUN names commands no page shows any more: {stale}"
    count = len(listed) + sum(len(b.commands) or 1 for b in marked)
    assert count <= MAX_NOT_RUN, (
        f"{count} doc commands are not run (at most {MAX_NOT_RUN}): run the new ones, or show a "
        "fast form, or raise MAX_NOT_RUN here saying why")
    assert len([b for b in ALL_BLOCKS if b.not_run is None]) >= 10


def test_comments_and_quotes():
    assert strip_comment('kzoo export "a.pth#arch=x" --out e/  # note') == 'kzoo export "a.pth#arch=x" --out e/'
    assert strip_comment("g = load('x#y')  # c") == "g = load('x#y')"
    assert strip_comment("# only a comment") == ""
    text = "<!-- not run: why -->\n```console\n$ ls  # c\nout\n```\n```text\nls\n```\n"
    [block] = parse(text, "x.md")
    assert block.not_run == "why" and block.commands == ["ls"]
    [block] = parse("```bash\nkzoo a \\\n  --b 1\n```\n", "x.md")
    assert block.not_run is None and block.commands == ["kzoo a    --b 1"]
    text = "<!-- not run: a -->\n```sh\nls\n```\n<!-- a note -->\n```python\nx = 1\n```\n"
    assert [b.not_run for b in parse(text, "x.md")] == ["a", None]


# === Running a page ===

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(tmp: Path) -> dict:
    """The user's shell: this interpreter as `python` and `kzoo`, this checkout first on the path."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "kzoo").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kzoo.cli "$@"\n')
    (bin_dir / "kzoo").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KZOO_", "PYTEST_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               KZOO_HOME=str(tmp / "kzoo-home"), KZOO_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


class Page:
    """Runs one page's blocks in order in `tmp/work`; `outputs` keeps (commands, stdout)."""

    def __init__(self, page: Path, tmp: Path):
        self.page, self.cwd, self.env = page, tmp / "work", _environment(tmp)
        self.cwd.mkdir()
        self.ports, self.server, self.outputs = {}, None, []

    def on_ports(self, text):
        for default, port in self.ports.items():
            text = re.sub(rf"\b(127\.0\.0\.1|localhost):{default}\b", rf"\g<1>:{port}", text)
        return text

    def run(self, what, argv, commands):
        # 5 minutes a command: on a loaded shared CPU one TensorFlow command took up to 2
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=300 * len(commands), check=False)
        assert done.returncode == 0, (
            f"{what} failed (exit {done.returncode}):\n" + "\n".join(commands)
            + f"\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-4000:]}")
        self.outputs.append((commands, done.stdout))

    def shell(self, block, commands):
        if commands:
            script = "\n".join(self.on_ports(c) for c in commands)
            self.run(f"{block.page}:{block.line}", ["bash", "-e", "-c", script], commands)

    def python(self, block):
        lines = []
        for line in block.text.splitlines():
            if strip_comment(line.strip()) in NOT_RUN:
                line = line[:len(line) - len(line.lstrip())] + "pass  # not run"
            lines.append(self.on_ports(line))
        script = self.cwd / f".block-{block.line}.py"
        script.write_text("\n".join(lines) + "\n")
        try:
            self.run(f"{block.page}:{block.line}", [sys.executable, script.name], lines)
        finally:
            script.unlink()

    def serve(self, command):
        """`kzoo serve TREE ...` in the background on free ports, once every model is AVAILABLE."""
        assert self.server is None, f"{self.page.name}: two `kzoo serve` lines"
        self.ports = {8501: _free_port(), 8500: _free_port()}
        words = shlex.split(command) + ["--port", str(self.ports[8501]),
                                        "--grpc-port", str(self.ports[8500])]
        tree = self.cwd / next(w for w in words[2:] if not w.startswith("-"))
        names = sorted(d.name for d in tree.iterdir() if d.is_dir() and any(
            v.name.isdigit() for v in d.iterdir()))
        assert names, f"{command}: nothing to serve in {tree}"
        self.server = subprocess.Popen(words, cwd=self.cwd, env=self.env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        for name in names:
            while True:
                try:
                    url = f"http://127.0.0.1:{self.ports[8501]}/v1/models/{name}"
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        states = [s["state"] for s in json.load(answer)["model_version_status"]]
                    if "AVAILABLE" in states:
                        break
                except OSError:
                    pass
                if self.server.poll() is not None or time.time() > deadline:
                    self.server.kill()
                    log = self.server.communicate()[0]
                    pytest.fail(f"`{command}` did not serve {name}:\n{log[-3000:]}")
                time.sleep(0.5)

    def stop(self):
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self.server is not None:
            self.server.stdout.close()

    def run_all(self):
        try:
            for block in blocks(self.page):
                if block.not_run is not None:
                    continue
                if block.lang in PYTHON:
                    self.python(block)
                    continue
                pending = []
                for command in block.commands:
                    if command in NOT_RUN:
                        continue
                    if command.split()[:2] == ["kzoo", "serve"]:
                        self.shell(block, pending)
                        pending = []
                        self.serve(command)
                    else:
                        pending.append(command)
                self.shell(block, pending)
        finally:
            self.stop()


def check_readme(page: Page):
    """The README's predict wrote 8 digits and its curl got one 32x32 digit back."""
    assert len(list((page.cwd / "samples").glob("*.png"))) == 8
    [answer] = [out for commands, out in page.outputs if commands[-1].startswith("curl")]
    image = json.loads(answer)["predictions"][0]
    assert len(image) == 32 and len(image[0]) == 32


CHECKS = {"README.md": check_readme}


def _ignored(name: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=REPO,
                          capture_output=True, check=False)
    return done.returncode == 0


RUN_PAGES = sorted({b.page for b in ALL_BLOCKS if b.not_run is None})


@pytest.mark.parametrize("name", RUN_PAGES)
def test_page_commands_run(name, tmp_path):
    page = Page(REPO / name, tmp_path)
    page.run_all()
    if name in CHECKS:
        CHECKS[name](page)
    if shutil.which("git") and (REPO / ".git").exists():
        made = [p.name + ("/" if p.is_dir() else "") for p in page.cwd.iterdir()]
        unignored = sorted(m for m in made if not _ignored(m))
        assert not unignored, f"{name}'s commands create {unignored}, which .gitignore does not ignore"
