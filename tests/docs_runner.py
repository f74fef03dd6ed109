"""Runs the code blocks of PushLab's markdown pages as a reader would.

Sybil finds the blocks (fenced ```sh and ```python, with their lines) and the marks
a page puts before a block in an HTML comment:

    <!-- docs-test: skip (why it cannot run here) -->
    <!-- docs-test: interactive (why) -->     a terminal app: started in a pty, quit with q
    <!-- docs-test: exit 1 (why) -->          the block is meant to end with that status
    <!-- docs-test: writes out/a.json out/b/ -->   files the block says it writes

Every block of a page runs in that page's own fresh folder, in order, so a later block
sees what an earlier one wrote. The folder has `.venv` (the project's own, installed:
`.venv/bin/pushlab` and bare `pushlab` both resolve), a copy of `scenarios/`, the
Makefile and a HOME of its own (so `~/.pushlab` is the folder's). A `pushlab serve ...`
line is started in the background, waited for until its ports accept connections, and
stopped when the page's last block has run.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import CodeBlockParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv" if (REPO / ".venv" / "bin" / "pushlab").exists() else Path(sys.prefix)
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
         *sorted((REPO / "docs" / "lessons").glob("*.md"))]
LANGUAGES = {"sh", "python", "text", "yaml", "json"}
MARKS = {"skip", "interactive", "exit", "writes"}
BLOCK_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 30.0


class DocFailure(AssertionError):
    """A doc command that did not do what the page says, with its page and line."""


@dataclass
class Mark:
    kind: str
    argument: str

    @classmethod
    def parse(cls, text: str) -> Mark:
        kind, _, rest = text.strip().partition(" ")
        if kind not in MARKS:
            raise ValueError(f"unknown docs-test mark {kind!r} (known: {', '.join(sorted(MARKS))})")
        return cls(kind, rest.strip())

    @property
    def reason(self) -> str:
        found = re.search(r"\((.+)\)", self.argument)
        return found.group(1) if found else ""


def _mark_parser(document: Document):
    """The `<!-- docs-test: ... -->` comments of a page, as examples of their own."""
    lexer = DirectiveInHTMLCommentLexer(directive="docs-test", arguments=r"[^\n]+?")
    for lexed in lexer(document):
        yield Region(lexed.start, lexed.end, Mark.parse(lexed.lexemes["arguments"]),
                     lambda example: None)


def fence_languages(path: Path) -> list[tuple[int, str]]:
    """(line, info string) of every fenced block on a page, tagged or not."""
    text = path.read_text()
    lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.M),
                                    mapping={"info": "info"})
    return [(text.count("\n", 0, region.start) + 1, region.lexemes["info"].strip())
            for region in lexer(Document(text, str(path)))]


@dataclass
class Block:
    page: Path
    example: Example
    language: str
    marks: list[Mark]

    @property
    def line(self) -> int:
        return self.example.line

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    def mark(self, kind: str) -> Mark | None:
        return next((m for m in self.marks if m.kind == kind), None)


SYBIL = Sybil(parsers=[CodeBlockParser(language="sh", evaluator=lambda e: None),
                       CodeBlockParser(language="python", evaluator=lambda e: None),
                       _mark_parser])


def blocks(page: Path) -> list[Block]:
    """The page's sh and python blocks in order, each with the marks written before it."""
    found: list[Block] = []
    pending: list[Mark] = []
    for example in SYBIL.parse(page).examples():
        if isinstance(example.parsed, Mark):
            pending.append(example.parsed)
            continue
        language = example.region.lexemes["arguments"]
        found.append(Block(page, example, language, pending))
        pending = []
    return found


# --- the page's folder ------------------------------------------------------------------


def _venv_into(folder: Path) -> None:
    """`.venv` whose parts are the project's installed venv, with a fresh make stamp, so
    `make demo` there runs the lab instead of reinstalling the shared venv."""
    venv = folder / ".venv"
    venv.mkdir()
    for part in VENV.iterdir():
        if part.name != ".installed":
            (venv / part.name).symlink_to(part)
    (venv / ".installed").touch()


def make_workspace(folder: Path, mpl_cache: Path) -> dict[str, str]:
    """Fill ``folder`` as a fresh clone would look after `make setup`; return its env."""
    _venv_into(folder)
    shutil.copytree(REPO / "scenarios", folder / "scenarios")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, folder / name)
    stamp = (folder / ".venv" / ".installed").stat().st_mtime
    os.utime(folder / "pyproject.toml", (stamp - 60, stamp - 60))
    (folder / "home").mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PUSHLAB_", "PYTEST_", "VIRTUAL_ENV"))}
    env.update(HOME=str(folder / "home"), MPLCONFIGDIR=str(mpl_cache), MPLBACKEND="Agg",
               PATH=f"{folder / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="100", TERM="xterm-256color")
    return env


# --- servers a page starts ---------------------------------------------------------------


def _serve_ports(words: list[str]) -> tuple[str, list[int]]:
    """Host and the non-zero ports of a `pushlab serve KIND ...` line, the command's own
    defaults filled in (read from the CLI itself, so the harness never guesses)."""
    import typer.main

    from simulator.cli import app

    serve = typer.main.get_command(app).commands["serve"]
    kind = words[words.index("serve") + 1]
    command = serve.commands[kind]
    args = words[words.index("serve") + 2:]
    params = command.make_context(kind, args, resilient_parsing=True).params
    ports = [int(v) for k, v in params.items() if k.endswith("port") and v]
    return str(params.get("host") or "127.0.0.1"), ports


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Server:
    line: str
    where: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """End the server's whole process group (a shell may have forked it)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
            time.sleep(0.2)
        self.process.wait()


def _without_comment(line: str) -> str:
    """The line up to its shell comment, if it has one outside quotes."""
    words = shlex.split(line, comments=True)
    for found in re.finditer(r"\s#", line):
        head = line[:found.start()]
        try:
            if shlex.split(head) == words:
                return head.rstrip()
        except ValueError:
            continue
    return line.rstrip()


def server_words(line: str) -> list[str] | None:
    """The words of a line that starts a `pushlab serve` server (env assignments and a
    trailing `&` removed), or None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if words and words[-1] == "&":
        words = words[:-1]
    if len(words) > 2 and Path(words[0]).name == "pushlab" and words[1] == "serve":
        return words
    return None


# --- running ------------------------------------------------------------------------------


@dataclass
class Page:
    """One page's folder, environment and the servers its blocks started."""

    folder: Path
    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()

    def check_servers(self, where: str) -> None:
        for server in self.servers:
            if server.process.poll() is not None:
                raise DocFailure(f"{where}: the server started at {server.where} "
                                 f"(`{server.line}`) exited with {server.process.returncode}:\n"
                                 f"{server.output()}")

    def start_server(self, line: str, words: list[str], where: str) -> None:
        host, ports = _serve_ports(words)
        busy = [p for p in ports if _accepts(host, p)]
        if busy:
            raise DocFailure(f"{where}: `{line}`: port(s) {busy} already in use on this "
                             f"machine before the page's server started")
        log = self.folder / ".docs-test" / f"server-{len(self.servers)}.log"
        log.parent.mkdir(exist_ok=True)
        command = _without_comment(line).removesuffix("&").strip()
        with log.open("wb") as out:
            process = subprocess.Popen(["bash", "-c", command], cwd=self.folder,
                                       env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        server = Server(command, where, process, log)
        self.servers.append(server)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(_accepts(host, p) for p in ports):
            if process.poll() is not None:
                raise DocFailure(f"{where}: `{command}` exited with {process.returncode} "
                                 f"before listening:\n{server.output()}")
            if time.monotonic() > deadline:
                raise DocFailure(f"{where}: `{command}`: ports {ports} not open after "
                                 f"{READY_TIMEOUT_S:.0f} s:\n{server.output()}")
            time.sleep(0.1)

    def run(self, block: Block) -> None:
        """Run one block as the page says; raise DocFailure naming page and line."""
        self.check_servers(block.where)
        if block.language == "python":
            self._python(block)
        elif block.mark("interactive"):
            for line, text in logical_lines(block):
                self._interactive(text, f"{block.page.relative_to(REPO)}:{line}")
        else:
            self._shell(block)
        writes = block.mark("writes")
        if writes:
            missing = [p for p in writes.argument.split() if not (self.folder / p).exists()]
            if missing:
                raise DocFailure(f"{block.where}: the page says this writes {missing}, "
                                 f"which do not exist afterwards")

    def _python(self, block: Block) -> None:
        script = self.folder / ".docs-test" / f"{block.page.stem}-{block.line}.py"
        script.parent.mkdir(exist_ok=True)
        script.write_text(block.example.parsed)
        done = _run([str(self.folder / ".venv" / "bin" / "python"), str(script)], self,
                    block.where)
        if done.returncode != 0:
            raise DocFailure(f"{block.where}: python snippet exited with {done.returncode} "
                             f"(its line N is the page's line {block.line}+N):\n"
                             f"{_tail(done)}")

    def _shell(self, block: Block) -> None:
        expected = block.mark("exit")
        script: list[str] = []
        for line, text in logical_lines(block):
            words = server_words(text)
            where = f"{block.page.relative_to(REPO)}:{line}"
            if words is None:
                script.append(f"__docs_line={line}; __docs_cmd={shlex.quote(text)}\n{text}")
                continue
            self._script(script, block, expected)
            script = []
            self.start_server(text, words, where)
        self._script(script, block, expected)

    def _script(self, script: list[str], block: Block, expected: Mark | None) -> None:
        if not script:
            return
        page = block.page.relative_to(REPO)
        if expected is None:
            head = ("set -o pipefail\n"
                    f"trap 'echo \"@@docs-test {page}:$__docs_line: exit $?: $__docs_cmd\" >&2;"
                    " exit 99' ERR\n")
        else:
            head = "set -o pipefail\n"
        done = _run(["bash", "-c", head + "\n".join(script)], self, block.where)
        failed = re.search(r"^@@docs-test (.*)$", done.stderr, re.M)
        if expected is None and done.returncode != 0:
            what = failed.group(1) if failed else f"{block.where}: exit {done.returncode}"
            raise DocFailure(f"{what}\n{_tail(done)}")
        if expected is not None and str(done.returncode) != expected.argument.split()[0]:
            raise DocFailure(f"{block.where}: the page says this block ends with exit "
                             f"{expected.argument.split()[0]}, it ended with "
                             f"{done.returncode}:\n{_tail(done)}")

    def _interactive(self, command: str, where: str) -> None:
        """Start a terminal app in a 100x30 pty, let it draw, press q, expect exit 0."""
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.folder,
                                   env=self.env, stdin=slave, stdout=slave, stderr=slave,
                                   start_new_session=True)
        os.close(slave)
        screen = bytearray()
        try:
            _read_for(master, screen, 10.0, process, drawn=4000)
            os.write(master, b"q")
            _read_for(master, screen, 10.0, process, until_exit=True)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            os.close(master)
        text = screen.decode(errors="replace")
        if process.returncode != 0 or "Traceback" in text:
            raise DocFailure(f"{where}: `{command}` (q pressed once it had drawn) ended with "
                             f"{process.returncode}:\n{_strip_ansi(text)[-3000:]}")


def _read_for(fd: int, into: bytearray, seconds: float, process: subprocess.Popen,
              until_exit: bool = False, drawn: int = 0) -> None:
    """Collect the terminal's output for at most ``seconds``: until the process exits
    (``until_exit``), or until ``drawn`` bytes arrived and half a second more has passed."""
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        if drawn and len(into) >= drawn and time.monotonic() - start > 1.0:
            deadline = min(deadline, time.monotonic() + 0.5)
            drawn = 0
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                into += os.read(fd, 65536)
            except OSError:
                break
        elif process.poll() is not None:
            break
        if until_exit and process.poll() is not None and not ready:
            break


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", "", text)


def _run(argv: list[str], page: Page, where: str) -> subprocess.CompletedProcess:
    """Run to the end; a traceback is a failure even when the exit status is 0."""
    try:
        done = subprocess.run(argv, cwd=page.folder, env=page.env, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise DocFailure(f"{where}: still running after {BLOCK_TIMEOUT_S:.0f} s; a long "
                         "command needs a docs-test mark with its reason") from exc
    if "Traceback (most recent call last)" in done.stderr + done.stdout:
        failed = re.search(r"^@@docs-test (.*)$", done.stderr, re.M)
        raise DocFailure(f"{failed.group(1) if failed else where}: printed a traceback "
                         f"(exit {done.returncode}):\n{_tail(done)}")
    return done


def _tail(done: subprocess.CompletedProcess) -> str:
    out = (done.stdout or "")[-1500:]
    err = "\n".join(line for line in (done.stderr or "").splitlines()
                    if not line.startswith("@@docs-test"))
    return f"--- stdout (end)\n{out}\n--- stderr (end)\n{err[-2500:]}"


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """(page line, command) for each command of a shell block, continuations joined."""
    out: list[tuple[int, str]] = []
    start, parts = 0, []
    for offset, raw in enumerate(block.example.parsed.splitlines()):
        line = block.line + 1 + offset
        if not parts:
            start = line
        if raw.rstrip().endswith("\\"):
            parts.append(raw.rstrip()[:-1])
            continue
        parts.append(raw)
        text = " ".join(p.strip() for p in parts).strip()
        parts = []
        if text and not text.startswith("#"):
            out.append((start, text))
    return out
