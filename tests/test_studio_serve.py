"""`lrm-studio serve` and plain `lrm-studio` as a user runs them: a real process that prints
its URL (127.0.0.1 by default), serves the page, moves to the next free port when the asked
one is taken, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from studio_helpers import make_capture

ROOT = Path(__file__).resolve().parents[1]
URL_RE = re.compile(r"lrm-studio: serving (http://([\d.]+):(\d+)/\S*)\s+\(workspace (.+?);")


def start(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT):
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            proc.kill()
            raise AssertionError("no URL printed within 60 s:\n" + "".join(seen)) from None
        seen.append(line)
        m = URL_RE.search(line)
        if m:
            proc.lines = lines  # type: ignore[attr-defined]  # what it prints next
            return proc, m
        if proc.poll() is not None and lines.empty():
            raise AssertionError("lrm-studio exited before serving:\n" + "".join(seen))


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_takes_next_free_port_and_stops_on_sigterm(tmp_path, gen):
    make_capture(tmp_path / "ws" / "cap", 3, gen, points=0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc, m = start(["serve", "--workspace", str(tmp_path / "ws"), "--port", str(port), "--no-demo"])
        try:
            url, host, got = m.group(1), m.group(2), int(m.group(3))
            assert host == "127.0.0.1" and got != port and got > port
            assert Path(m.group(4)) == (tmp_path / "ws").resolve()
            with urllib.request.urlopen(url, timeout=20) as r:
                assert r.status == 200 and "<html" in r.read().decode().lower()
        finally:
            assert stop(proc) == 0


def test_unknown_capture_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "studio.cli", "serve", "--workspace", str(tmp_path), "--capture", "nope"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no capture 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_plain_lrm_studio_serves_the_default_workspace(tmp_path):
    ws = tmp_path / "from-env"
    proc, m = start([], env={"LRM_STUDIO_WORKSPACE": str(ws)})
    try:
        assert Path(m.group(4)) == ws.resolve() and ws.is_dir()
        with urllib.request.urlopen(m.group(1), timeout=20) as r:
            assert r.status == 200
    finally:
        assert stop(proc) == 0


def test_serve_on_all_interfaces_warns_and_wants_the_token(tmp_path, gen):
    make_capture(tmp_path / "ws" / "cap", 3, gen, points=0)
    proc, m = start(
        ["serve", "--workspace", str(tmp_path / "ws"), "--host", "0.0.0.0", "--port", "0", "--no-demo"]
    )
    try:
        url, port = m.group(1), int(m.group(3))
        assert "?token=" in url
        out = []
        while not any("fixedDpr" in line for line in out):
            out.append(proc.lines.get(timeout=20))
        text = "".join(out)
        assert "WARNING" in text and "reachable from the network" in text
        with urllib.request.urlopen(url, timeout=20) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20)
        assert e.value.code == 403
    finally:
        assert stop(proc) == 0


def test_sigterm_after_pycolmap_was_imported_by_a_job_stops_cleanly(tmp_path, gen):
    """pycolmap's glog failure handler took SIGTERM over once an SfM job imported it (a stack
    dump and exit 143): serve imports it first, on the main thread. Here a thread imports it
    once serve's SIGTERM handler is in place (as a job does, later), whatever the machine's
    load."""
    make_capture(tmp_path / "ws" / "cap", 3, gen, points=0)
    script = (
        "import sys, threading\n"
        "from studio.cli import main\n"
        "def job():  # like an SfM job: imports pycolmap once the studio is up\n"
        "    import signal, time\n"
        "    while signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):\n"
        "        time.sleep(0.05)\n"
        "    import pycolmap\n"
        "    print('pycolmap imported', flush=True)\n"
        "threading.Thread(target=job, daemon=True).start()\n"
        "main(sys.argv[1:])\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "serve",
            "--workspace",
            str(tmp_path / "ws"),
            "--port",
            "0",
            "--no-demo",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "pycolmap imported" in line:
                break
        assert any("pycolmap imported" in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    assert "Aborted" not in output and "stack trace" not in output
