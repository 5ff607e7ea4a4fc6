"""Every `outpost` command works beside the process that holds the catalog: forwarded over
the admin socket, with the same output and exit code as alone (real processes only)."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core.admin import AdminServer, Request, Session, forward, socket_path
from core.admin.frames import ACCEPTED, CANCEL, EXIT, REQUEST, recv_frame, send_frame
from core.config import Settings
from tests.support.forwarding import operate_hub_from_cli, popen_in, run_in, run_in_pty
from tests.support.hub import start_hub_process, wait_until

CSV = "temp,site\n1.5,north\n2.5,south\n3.0,north\n"
# Read-only or idempotent: alone and forwarded they must print the same bytes.
COMMANDS: list[tuple[str, ...]] = [
    ("info", "--json"),
    ("info",),
    ("dataset", "import", "data.csv", "--json"),  # a path relative to the caller's folder
    ("dataset", "import", "data.csv"),
    ("dataset", "list"),
    ("dataset", "list", "--json"),
    ("dataset", "head", "data"),
    ("dataset", "head", "data", "--json"),
    ("dataset", "show", "nope"),  # an error: exit 1, one line
    ("dataset", "show"),  # a usage error: exit 2
    ("dataset", "import", "missing.csv", "--json"),
    ("agent", "list", "--json"),
    ("agent", "status", "nope", "--json"),
    ("model", "list"),
    ("drift", "alerts", "--json"),
    ("keys", "show", "--json"),
    ("keys", "show", "--out", "desk.pub", "--json"),
    ("--version",),
]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "data.csv").write_text(CSV)
    return folder


def test_output_and_exit_codes_match_running_alone(outpost_home: Path, work: Path) -> None:
    assert run_in(outpost_home, work, "dataset", "import", "data.csv").returncode == 0
    alone = [run_in(outpost_home, work, *c) for c in COMMANDS]
    (work / "desk.pub").unlink()
    hub = start_hub_process(outpost_home)
    try:
        forwarded = [run_in(outpost_home, work, *c) for c in COMMANDS]
        assert hub.proc.poll() is None and socket_path(Settings(outpost_home)).exists()
    finally:
        hub.stop()
    for command, a, f in zip(COMMANDS, alone, forwarded, strict=True):
        assert (f.returncode, f.stdout, f.stderr) == (a.returncode, a.stdout, a.stderr), command
    codes = {c: a.returncode for c, a in zip(COMMANDS, alone, strict=True)}
    assert codes[("dataset", "show", "nope")] == 1 and codes[("dataset", "show")] == 2
    assert (work / "desk.pub").is_file()  # written where the caller stands, not the hub


def test_progress_bar_draws_on_the_callers_terminal(outpost_home: Path, work: Path) -> None:
    with (work / "big.csv").open("w") as out:
        out.write("id,value,site\n")
        out.writelines(f"{i},{i * 0.5},s{i % 7}\n" for i in range(100_000))
    code, alone = run_in_pty(outpost_home, work, "dataset", "import", "big.csv")
    assert code == 0
    hub = start_hub_process(outpost_home)
    try:
        code, forwarded = run_in_pty(outpost_home, work, "dataset", "import", "big.csv",
                                     "--name", "again")
    finally:
        hub.stop()
    assert code == 0
    for drawn in (alone, forwarded):  # a coloured bar on the terminal, erased at the end
        assert b"\x1b[2Kread " in drawn and "━".encode() in drawn and b"\x1b[?25h" in drawn
        assert b"imported" in drawn or b"rows" in drawn, drawn[-400:]


def test_two_clis_at_once_both_land(outpost_home: Path, work: Path) -> None:
    (work / "b.csv").write_text("x,y\n1,2\n3,4\n")
    hub = start_hub_process(outpost_home)
    try:
        procs = [popen_in(outpost_home, work, "dataset", "import", name, "--json")
                 for name in ("data.csv", "b.csv")]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        names = {d["name"] for d in run_in(outpost_home, work, "dataset", "list",
                                          "--json").json()["datasets"]}
        assert names == {"data", "b"}
    finally:
        hub.stop()


def _forwarded_hub(home: Path, work: Path) -> tuple[subprocess.Popen[str], str]:
    """`outpost hub serve --port 0` run beside a holder: a command that runs until stopped."""
    client = popen_in(home, work, "hub", "serve", "--port", "0", "--json")
    assert client.stdout is not None
    lines = []
    while not lines or lines[-1].rstrip() != "}":
        line = client.stdout.readline()
        assert line, client.communicate(timeout=30)
        lines.append(line)
    return client, "".join(lines)


def test_holder_killed_mid_command_then_the_next_command_takes_over(
        outpost_home: Path, work: Path) -> None:
    hub = start_hub_process(outpost_home)
    client, _ = _forwarded_hub(outpost_home, work)
    try:
        hub.kill()  # kill -9 while the forwarded command runs in it
        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 1
    assert err.splitlines() == [
        f"error: the Outpost process that holds the catalog (pid {hub.proc.pid}) stopped "
        "while it ran this command; check what it did, then run the command again"]
    assert socket_path(Settings(outpost_home)).exists()  # the crashed holder's, stale
    result = run_in(outpost_home, work, "dataset", "import", "data.csv", "--json")
    assert result.returncode == 0 and result.json()["rows"] == 3, result.stderr
    assert not socket_path(Settings(outpost_home)).exists()  # the new holder cleaned up


def test_ctrl_c_cancels_the_forwarded_command_and_the_holder_stays(
        outpost_home: Path, work: Path) -> None:
    hub = start_hub_process(outpost_home)
    client: subprocess.Popen[str] | None = None
    try:
        client, started = _forwarded_hub(outpost_home, work)
        port = json.loads(started)["port"]
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=30)
        assert (client.returncode, err) == (0, "")  # as `hub serve` alone on Ctrl-C
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert hub.proc.poll() is None
        assert run_in(outpost_home, work, "info", "--json").returncode == 0
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.communicate()
        hub.stop()


def test_stale_socket_file_and_a_silent_holder(outpost_home: Path, work: Path) -> None:
    """A socket file nobody listens on: with the catalog free the command runs here; with
    the catalog held by a process that does not listen, the old one-line error."""
    outpost_home.mkdir(parents=True)
    path = socket_path(Settings(outpost_home))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    assert run_in(outpost_home, work, "info", "--json").returncode == 0
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(outpost_home / "catalog.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_in(outpost_home, work, "info", "--json")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr.splitlines() == [
            f"error: catalog is in use by another Outpost process: "
            f"{outpost_home / 'catalog.duckdb'}"]
    finally:
        holder.communicate("", timeout=30)


SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_PYTHON.exists(),
                    reason="needs root (to connect as another user) and /usr/bin/python3")
def test_another_users_connection_is_refused() -> None:
    home = Path(tempfile.mkdtemp(prefix="outpost-shared-"))  # reachable by user "nobody"
    home.chmod(0o755)
    ran = threading.Event()

    def handler(session: Session) -> int:
        ran.set()
        return 0

    server = AdminServer(Settings(home), handler).start()
    try:
        assert (server.path.stat().st_mode & 0o777) == 0o600
        server.path.chmod(0o666)  # even when the file mode lets them in, the peer check refuses
        probe = ("import socket, struct, sys; s = socket.socket(socket.AF_UNIX);"
                 " s.connect(sys.argv[1]); k, n = struct.unpack('>cI', s.recv(5));"
                 " sys.stdout.write(k.decode() + s.recv(n).decode())")
        proc = subprocess.run([str(SYSTEM_PYTHON), "-c", probe, str(server.path)], user=65534,
                              capture_output=True, text=True, timeout=30, cwd="/")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "rrefused: only the owner of this Outpost home may use it"
        assert not ran.is_set()
    finally:
        server.stop()
        shutil.rmtree(home)
    assert not server.path.exists()


def test_headless_hub_operated_entirely_from_the_cli(outpost_home: Path, work: Path) -> None:
    hub = start_hub_process(outpost_home)
    try:
        operate_hub_from_cli(outpost_home, work, hub.url)
        assert hub.proc.poll() is None
    finally:
        hub.stop()


def test_hostile_frames_get_one_line_and_the_holder_serves_on(tmp_path: Path) -> None:
    server = AdminServer(Settings(tmp_path / "home"), lambda session: 7).start()
    try:
        for garbage in (struct.pack(">cI", b"q", 1 << 30),  # a 1 GiB frame announced
                        struct.pack(">cI", b"q", 5) + b"12345",  # not JSON
                        struct.pack(">cI", b"q", 14) + b'{"argv": "x"}\n',  # argv not a list
                        struct.pack(">cI", b"z", 0)):  # not a request
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(server.path))
                sock.sendall(garbage)
                kind, size = struct.unpack(">cI", sock.recv(5))
                text = sock.recv(size).decode()
                assert kind == b"r" and text.startswith("refused: ") and "\n" not in text
        request = Request(["info"], "/", {})
        assert forward(Settings(tmp_path / "home"), request, io.BytesIO(), io.BytesIO()) == 7
        assert server.completed == 1
    finally:
        server.stop()


def test_cancel_interrupts_a_command_that_ignores_its_token(tmp_path: Path) -> None:
    """Ctrl-C on a command with no cancel points: interrupted in the holder, which serves on."""
    looping = threading.Event()

    def stubborn(session: Session) -> int:
        looping.set()
        while True:  # never looks at session.cancel
            time.sleep(0.01)

    server = AdminServer(Settings(tmp_path / "home"), stubborn).start()
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(server.path))
            send_frame(sock, REQUEST, Request(["x"], "/", {}).to_json())
            assert recv_frame(sock)[0] == ACCEPTED  # type: ignore[index]
            assert looping.wait(10)
            send_frame(sock, CANCEL)
            sock.settimeout(10)
            assert recv_frame(sock) == (EXIT, b"130")
        wait_until(lambda: server.running == 0, 10, "the session ended")
        server.handler = lambda session: 0
        assert forward(Settings(tmp_path / "home"), Request(["y"], "/", {}), io.BytesIO(),
                       io.BytesIO()) == 0
    finally:
        server.stop()


def test_long_home_gets_a_private_socket_folder(tmp_path: Path) -> None:
    home = tmp_path / ("deep" * 30) / "home"
    home.mkdir(parents=True)
    server = AdminServer(Settings(home), lambda session: 0).start()
    try:
        assert server.path.parent != home
        assert (server.path.parent.stat().st_mode & 0o777) == 0o700
        assert server.path.parent.stat().st_uid == os.geteuid()
    finally:
        server.stop()
