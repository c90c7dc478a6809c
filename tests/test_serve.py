"""`al-explorer serve` stops its app with it: signals are passed on and nothing outlives it.

Real processes throughout: a parent started as ``python3 -m al_core serve`` (or a small driver
around :func:`al_core.cli.run_foreground` with a stand-in child, for the fast cases), signaled
the way a terminal, a service manager or a closing terminal would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from al_core.db.catalog import Catalog

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads the process tree from /proc")

REPO = Path(__file__).resolve().parent.parent
Proc = tuple[int, str]  # pid and start time: a pid that was reused is not the same process


# ---- the process tree, from /proc ----------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may hold spaces and parentheses. Returns the pid,
    # then proc(5)'s fields from 3 (state) on: field n is at index n - 2.
    return [raw[:raw.index(" ")]] + raw[raw.rindex(")") + 2:].split()


def _identity(pid: int) -> Proc | None:
    fields = _stat(pid)
    return (pid, fields[20]) if fields else None  # field 22 of proc(5): starttime


def descendants(pid: int) -> list[Proc]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[2]), []).append(int(entry.name))
    found: list[Proc] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        ident = _identity(child)
        if ident:
            found.append(ident)
        todo.extend(children.get(child, []))
    return found


def alive(proc: Proc) -> bool:
    fields = _stat(proc[0])
    return bool(fields) and fields[20] == proc[1] and fields[1] not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def assert_all_gone(procs: list[Proc], timeout: float = 30) -> None:
    try:
        wait_until(lambda: not any(alive(p) for p in procs), timeout, "processes to exit")
    except AssertionError:
        survivors = [p for p in procs if alive(p)]
        for pid, _start in survivors:  # do not leave them to the next test
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"still running {timeout:g} s later: {survivors}") from None


def stop(parent: subprocess.Popen[bytes], how: str) -> None:
    """Signal ``parent``; "ctrl-c" signals its whole process group, as a terminal does."""
    if how == "ctrl-c":
        os.killpg(parent.pid, signal.SIGINT)
    else:
        parent.send_signal(getattr(signal, how))


EXPECTED_STATUS = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT,
                   "ctrl-c": 128 + signal.SIGINT, "SIGHUP": 128 + signal.SIGHUP}


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start parents in their own process group, like a terminal's foreground job; a parent
    that a failing test left running is killed, with its descendants, at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], out: Path) -> subprocess.Popen[bytes]:
        with out.open("wb") as sink:
            proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, process_group=0)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            leftovers = descendants(proc.pid)
            proc.kill()
            proc.wait()
            for pid, _start in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---- fast: a stand-in child, no Streamlit ---------------------------------------------------

CHILD = textwrap.dedent("""
    import signal, subprocess, sys, time

    mode, log = sys.argv[1], sys.argv[2]

    def note(line):
        with open(log, "a") as f:
            f.write(line + "\\n")

    def on_signal(signum, frame):
        note(f"signal {signum}")
        if mode == "exit":
            sys.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # a grandchild that ignores stop signals: it goes only if its process group is killed
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import signal, time\\n"
         "signal.signal(signal.SIGINT, signal.SIG_IGN)\\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
         "print('ok', flush=True)\\n"
         "time.sleep(300)"], stdout=subprocess.PIPE)
    assert grandchild.stdout.readline() == b"ok\\n"
    note(f"ready {grandchild.pid}")
    if mode == "code":
        grandchild.kill()
        grandchild.wait()
        sys.exit(3)
    while True:  # "exit": leaves on the first signal; "ignore": never does
        time.sleep(0.05)
""")


def _driver(tmp_path: Path, mode: str, grace_s: float) -> tuple[list[str], Path]:
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    log = tmp_path / "child.log"
    code = ("import sys; from al_core.cli import run_foreground; "
            f"sys.exit(run_foreground([sys.executable, {str(child)!r}, {mode!r}, {str(log)!r}], "
            f"grace_s={grace_s!r}))")
    return [sys.executable, "-c", code], log


def _signals_seen(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines()
            if line.startswith("signal ")]


def _wait_ready(parent: subprocess.Popen[bytes], log: Path) -> list[Proc]:
    def ready() -> bool:
        assert parent.poll() is None, "the parent exited early"
        return log.exists() and "ready" in log.read_text()
    wait_until(ready, 60, "the stand-in child to start")
    tree = descendants(parent.pid)
    assert len(tree) == 2, tree  # the child and its grandchild
    return tree


def test_child_exit_status_is_passed_on(tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    args, log = _driver(tmp_path, "code", grace_s=5)
    parent = spawn(args, tmp_path / "out.txt")
    assert parent.wait(timeout=60) == 3
    assert "ready" in log.read_text()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "ctrl-c", "SIGHUP"])
def test_stop_signal_is_forwarded_once(tmp_path: Path, how: str,
                                       spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    args, log = _driver(tmp_path, "exit", grace_s=30)
    parent = spawn(args, tmp_path / "out.txt")
    tree = _wait_ready(parent, log)
    stop(parent, how)
    status = parent.wait(timeout=60)
    assert_all_gone(tree)
    assert status == EXPECTED_STATUS[how]
    forwarded = signal.SIGTERM if how == "SIGHUP" else getattr(signal, how, signal.SIGINT)
    assert _signals_seen(log) == [forwarded]
    assert "Traceback" not in (tmp_path / "out.txt").read_text()


def test_child_that_ignores_the_signal_is_killed_after_the_grace_period(
        tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    args, log = _driver(tmp_path, "ignore", grace_s=1)
    parent = spawn(args, tmp_path / "out.txt")
    tree = _wait_ready(parent, log)
    stop(parent, "SIGTERM")
    status = parent.wait(timeout=60)
    assert_all_gone(tree)
    assert status == 128 + signal.SIGTERM
    assert _signals_seen(log) == [signal.SIGTERM]
    assert "did not stop within 1 s; killing it" in (tmp_path / "out.txt").read_text()


# ---- slow: the real app --------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
            return resp.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "ctrl-c", "SIGHUP"])
def test_serve_leaves_nothing_behind(tmp_path: Path, how: str,
                                     spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    db = tmp_path / "c.duckdb"
    port = _free_port()
    out = tmp_path / "out.txt"
    parent = spawn([sys.executable, "-m", "al_core", "serve", "--catalog", str(db),
                    "--port", str(port)], out)

    def up() -> bool:
        assert parent.poll() is None, f"serve exited early:\n{out.read_text()}"
        return _healthy(port)
    wait_until(up, 180, f"the app to answer on port {port}")
    tree = descendants(parent.pid)
    assert tree, "serve runs the app as a child process"

    stop(parent, how)
    status = parent.wait(timeout=60)
    assert_all_gone(tree)
    assert status == EXPECTED_STATUS[how]
    assert not _healthy(port)
    log = out.read_text()
    assert log.count("Stopping...") == 1, log  # Ctrl+C reached the app once, not twice
    assert "Traceback" not in log
    Catalog.open(db).close()  # nothing holds the catalog any more


@pytest.mark.slow
def test_serve_stops_on_ctrl_c_typed_at_its_terminal(tmp_path: Path) -> None:
    """A real pseudo-terminal: ^C reaches the app once, through serve, and all of it exits."""
    import fcntl
    import pty
    import select
    import termios

    db = tmp_path / "c.duckdb"
    port = _free_port()
    controller, terminal = pty.openpty()

    def own_terminal() -> None:  # in the child: a new session with the pty as its terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    parent = subprocess.Popen([sys.executable, "-m", "al_core", "serve", "--catalog", str(db),
                               "--port", str(port)], cwd=REPO, stdin=terminal, stdout=terminal,
                              stderr=terminal, preexec_fn=own_terminal)
    os.close(terminal)
    screen = bytearray()

    def read_screen() -> None:
        while select.select([controller], [], [], 0)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal has closed: everyone on it has gone
                return
            if not chunk:
                return
            screen.extend(chunk)

    tree: list[Proc] = []
    try:
        def up() -> bool:
            read_screen()
            assert parent.poll() is None, f"serve exited early:\n{screen.decode(errors='replace')}"
            return _healthy(port)
        wait_until(up, 180, f"the app to answer on port {port}")
        tree = descendants(parent.pid)
        assert tree, "serve runs the app as a child process"
        assert os.tcgetpgrp(controller) == parent.pid  # serve is the terminal's foreground job

        os.write(controller, b"\x03")

        def stopped() -> bool:
            read_screen()
            return parent.poll() is not None
        wait_until(stopped, 60, "serve to exit after ^C")
        assert_all_gone(tree)
        read_screen()
        text = screen.decode(errors="replace")
        assert parent.returncode == 128 + signal.SIGINT, text
        assert text.count("Stopping...") == 1, text
        assert "Traceback" not in text
        Catalog.open(db).close()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid, _start in [p for p in tree if alive(p)]:
            os.kill(pid, signal.SIGKILL)
        os.close(controller)
