"""Test helpers: real servers (Dovecot, the listener, a cuttable TCP proxy) and raw clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from imap_tools import MailBoxUnencrypted
from sqlalchemy import func, select

from mailproc.adapters.smtp import Listener
from mailproc.app import App
from mailproc.config_transport import ListenerSettings
from mailproc.store.db import transaction
from mailproc.store.models import Blob, Inbound
from mailproc.supervisor import build_listener

MAILPROC = str(Path(sys.executable).with_name("mailproc"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def make_message(n: int, tag: str = "m", size: int = 3000) -> bytes:
    """A plain support mail of about ``size`` bytes with a unique Message-ID."""
    line = b"The export job fails with error E1234 after the upgrade; please advise.\r\n"
    body = line * max(1, size // len(line))
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\n"
        "To: support@dataflow.com\r\n"
        f"Subject: Case {tag}-{n}\r\n"
        f"Message-ID: <{tag}-{n}@example.com>\r\n"
        "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
    ).encode() + body


def count_rows(app: App) -> tuple[int, int]:
    """(inbound rows, blobs) in the database."""
    with transaction(app.sessions, commit=False) as session:
        inbound = session.scalar(select(func.count()).select_from(Inbound))
        blobs = session.scalar(select(func.count()).select_from(Blob))
    return int(inbound or 0), int(blobs or 0)


def message_ids(app: App) -> list[str]:
    """The Message-IDs of every stored inbound message (with repetitions)."""
    with transaction(app.sessions, commit=False) as session:
        return [mid for mid in session.scalars(select(Inbound.message_id)) if mid]


class RawClient:
    """A line-level SMTP/LMTP client on a plain socket, for what smtplib cannot send."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> list[bytes]:
        """One (possibly multi-line) reply, as its lines without CRLF."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line.rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return lines

    def command(self, line: bytes) -> list[bytes]:
        """Send one command line and read its reply."""
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def close(self) -> None:
        """Hang up."""
        self.file.close()
        self.sock.close()


class ListenerThread:
    """The production listener (``build_listener``) on its own event loop in a thread."""

    def __init__(self, app: App, settings: ListenerSettings) -> None:
        self.group_sizes: list[int] = []
        self.listener: Listener = build_listener(app, settings, self.group_sizes.append)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        return self.listener.port

    def __enter__(self) -> ListenerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(5), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class TcpProxy:
    """A TCP forwarder to ``target_port`` that a test can cut and restore (a database outage).

    With ``downstream_bytes`` it forwards at most that many bytes from the server (over all
    connections) and then stalls every connection: a client that can never finish its run.
    """

    def __init__(self, target_port: int, downstream_bytes: int | None = None) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._downstream_left = downstream_bytes

    def start(self) -> None:
        """Accept and forward connections."""
        server = socket.create_server(("127.0.0.1", self.port))
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._server.close()
            self._server = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool = False) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if downstream and self._downstream_left is not None:
                    with self._lock:
                        data = data[: self._downstream_left]
                        self._downstream_left -= len(data)
                    if not data:
                        return  # hold the connection open, silent, until cut
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


_ACCOUNTS = 500
_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """A private Dovecot IMAP server under a temporary directory (run as root, foreground)."""

    def __init__(self) -> None:
        # Short paths: Dovecot's unix sockets live under base_dir.
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root.chmod(0o755)
        (self.root / "home").mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(self.root / "home", nobody.pw_uid, nobody.pw_gid)
        # Every account up front: Dovecot may not notice a passwd-file changed within a second.
        (self.root / "passwd").write_text(
            "".join(f"user{n}:{{PLAIN}}secret\n" for n in range(1, _ACCOUNTS + 1))
        )
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._users = 0

    def start(self) -> None:
        """Start the master process and wait until IMAP answers."""
        config = self.root / "dovecot.conf"
        config.write_text(_DOVECOT_CONF.format(root=self.root, port=self.port))
        self._process = subprocess.Popen(["dovecot", "-F", "-c", str(config)])
        wait_for(lambda: port_open(self.port), 10, "dovecot to listen")

    def stop(self) -> None:
        """Stop the master (by its pid) and wait until it has exited."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(10)
            self._process = None
        wait_for(lambda: not port_open(self.port), 10, "dovecot to stop")

    def remove(self) -> None:
        """Stop and delete everything."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def new_user(self) -> str:
        """A fresh account (password ``secret``) with an empty mailbox."""
        self._users += 1
        assert self._users <= _ACCOUNTS, "raise _ACCOUNTS"
        return f"user{self._users}"

    def connect(self, user: str) -> MailBoxUnencrypted:
        """An imap-tools client logged in as ``user``."""
        return MailBoxUnencrypted("127.0.0.1", self.port, timeout=10).login(user, "secret", None)

    def deliver(self, user: str, messages: list[bytes], folder: str = "") -> None:
        """Drop messages into the Maildir the way a local delivery agent does (fast), with the
        size and the RFC822.SIZE in the file name as Dovecot's own delivery writes them."""
        nobody = pwd.getpwnam("nobody")
        maildir = self.root / "home" / user / "Maildir"
        target = maildir / f".{folder}" if folder else maildir
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.root / "home" / user, maildir, target, *target.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        stamp = time.time_ns()
        for index, raw in enumerate(messages):
            virtual_size = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
            name = f"{stamp}.M{index}P{os.getpid()}.test,S={len(raw)},W={virtual_size}"
            temporary = target / "tmp" / name
            temporary.write_bytes(raw)
            os.chown(temporary, nobody.pw_uid, nobody.pw_gid)
            temporary.rename(target / "new" / name)

    def folder_uids(self, user: str, folder: str) -> list[str]:
        """The UIDs in ``folder`` (empty when the folder does not exist)."""
        with self.connect(user) as box:
            if not box.folder.exists(folder):
                return []
            box.folder.set(folder)
            return box.uids()

    def seen_count(self, user: str, folder: str) -> int:
        """How many messages in ``folder`` carry \\Seen."""
        with self.connect(user) as box:
            box.folder.set(folder)
            return len(box.uids("SEEN"))


@contextlib.contextmanager
def dovecot_server() -> Iterator[Dovecot]:
    """A started private Dovecot, removed afterwards."""
    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def run_cli(
    args: list[str], config: Path, timeout: float = 60, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``mailproc --config CONFIG ARGS`` to completion."""
    completed = subprocess.run(
        [MAILPROC, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,  # relative paths (the default Maildir relay) land beside the config
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"mailproc {args} failed: {completed.stderr}")
    return completed


def start_cli(args: list[str], config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``mailproc --config CONFIG ARGS`` in the background, output to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [MAILPROC, "--config", str(config), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=config.parent,  # relative paths (the default Maildir relay) land beside the config
        )
