"""A warm worker for the CLI: ``opsflow worker start`` keeps a process with everything imported and
every scenario's world built, and each later ``opsflow`` command runs in a fork of it.

A command pays, in a new process, about a second of imports (moto's service models, botocore,
Powertools) and the first build of its world before its run starts; a fork of a warm worker
pays neither, and has its own copy of everything (a fork shares nothing that one command can
change for the next). The client hands the worker its argument list, working directory and
environment, and its standard input, output and error themselves (file descriptors over the Unix
socket), so the command writes straight to the terminal (colour included) and the client exits
with the command's status. Ctrl-C in the client interrupts the command.

The worker serves only what it would run exactly as a new process would: a request whose code
(every source file's size and time, the template, the definitions), interpreter or opsflow
environment (``OPSFLOW_RUNS_DIR``, ``OPSFLOW_CACHE_DIR``, read at import) differs from the
worker's is refused, and the client runs the command itself. Nothing starts a worker but
``opsflow worker start``; it stops after ``--idle-minutes`` without a request, or with
``opsflow worker stop``.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsflow.template import ROOT

ENVIRONMENT = ("OPSFLOW_RUNS_DIR", "OPSFLOW_CACHE_DIR")
"""Environment variables the CLI reads at import: a worker serves only clients that agree."""
SOURCES = ("opsflow", "functions", "workflows", "statemachines")
LOCAL = {"worker", "-h", "--help", "--version"}
"""First arguments the client always runs itself (fast already, or the worker's own control)."""
IDLE_MINUTES = 30
FDS = 3


def socket_path() -> Path:
    """The worker's socket: one per user and project checkout (``OPSFLOW_WORKER_SOCKET``
    moves it)."""
    given = os.environ.get("OPSFLOW_WORKER_SOCKET")
    if given:
        return Path(given)
    project = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"opsflow-{os.getuid()}-{project}.sock"


def digest() -> str:
    """What a fork of the worker must share with a new process: the code, the interpreter and
    the environment read at import."""
    parts = [code_digest(), *(f"{k}={os.environ.get(k, '')}" for k in ENVIRONMENT)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def code_digest() -> str:
    """The interpreter and the code: each source file's path, size and modification time."""
    parts = [sys.executable]
    for root in SOURCES:
        for path in sorted((ROOT / root).rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                stat = path.stat()
                parts.append(f"{path.relative_to(ROOT)}:{stat.st_size}:{stat.st_mtime_ns}")
    for name in ("template.yaml", "pyproject.toml"):
        stat = (ROOT / name).stat()
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------------------- client
def _send(connection: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        connection.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        connection.sendall(data)


def _lines(connection: socket.socket) -> Any:
    """Each newline-ended JSON message the peer sends, until it closes."""
    buffer = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def run(argv: list[str]) -> int | None:
    """Run ``opsflow argv`` in a fork of the worker; None when no worker serves it (none
    running, or one for other code or settings), so the caller runs it itself."""
    if argv[:1] and argv[0] in LOCAL:
        return None
    path = socket_path()
    if not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(2)
        connection.connect(str(path))
        connection.settimeout(None)
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                   "digest": digest(), "code": code_digest()}
        _send(connection, request, [sys.stdin.fileno(), sys.stdout.fileno(),
                                    sys.stderr.fileno()])
        sys.stdout.flush()
        sys.stderr.flush()
        child = None
        try:
            for message in _lines(connection):
                if "refused" in message:
                    return None
                if "pid" in message:
                    child = int(message["pid"])
                if "status" in message:
                    return int(message["status"])
        except KeyboardInterrupt:
            if child is not None:
                os.kill(child, signal.SIGINT)
                for message in _lines(connection):
                    if "status" in message:
                        return int(message["status"])
            return 130
        return None  # the worker went away without an answer: run it here
    except OSError:
        return None
    finally:
        connection.close()


# ---------------------------------------------------------------------------------- worker
def _warm() -> None:
    """Import everything a command uses and build every scenario's world once, so that each
    fork restores it (:mod:`opsflow.engine.snapshot`), and run each scenario's sample event
    once: the clients, service models and state-machine programs a run loads at first use are
    then loaded for every fork (caches, which hold no account state)."""
    from opsflow import cli  # noqa: F401  (imported for the forks)
    from opsflow.engine.runner import LocalEngine
    from workflows.catalog import SCENARIOS

    for scenario, spec in SCENARIOS.items():
        with LocalEngine(scenarios=[scenario]) as engine:
            engine.run(scenario, json.loads((ROOT / spec.sample_event).read_text("utf-8")))
    with LocalEngine() as engine:
        engine.import_handlers()


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds = b"", array.array("i")
    while not data.endswith(b"\n"):
        chunk, ancillary, _, _ = connection.recvmsg(
            65536, socket.CMSG_SPACE(FDS * fds.itemsize))
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return json.loads(data), list(fds)


def _child(connection: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the fork: become the client's process (its descriptors, directory, environment,
    arguments), run the command, send its status."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds[:FDS]):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115  (the process's own descriptors)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["opsflow", *request["argv"]]
    _send(connection, {"pid": os.getpid()})
    from opsflow import cli

    status = 1
    try:
        status = cli.main(request["argv"])
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        _send(connection, {"status": status})
        os._exit(status)


class _Stop(Exception):
    """SIGTERM: stop serving."""


def serve(idle_minutes: float = IDLE_MINUTES) -> None:
    """Warm up, then serve requests on the socket until idle for ``idle_minutes`` or told to
    stop (SIGTERM, ``opsflow worker stop``)."""
    from opsflow import tune_gc

    tune_gc()
    _warm()
    own, own_code = digest(), code_digest()
    path = socket_path()
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(5)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel

    def stop(*_: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_minutes * 60:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            last = time.monotonic()
            with connection:
                try:
                    request, fds = _receive(connection)
                except (ConnectionError, ValueError, OSError):
                    continue
                if request.get("digest") != own:
                    for fd in fds:
                        os.close(fd)
                    _send(connection, {"refused": "the worker runs other code or settings"})
                    if request.get("code") != own_code:
                        break  # the code changed: this worker will never serve again
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                if os.fork() == 0:
                    listener.close()
                    _child(connection, request, fds)
                for fd in fds:
                    os.close(fd)
    except _Stop:
        pass
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def running() -> int | None:
    """The worker's process ID, when one answers on the socket."""
    pid_file = socket_path().with_suffix(".pid")
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid if socket_path().exists() else None


def start(idle_minutes: float = IDLE_MINUTES, timeout: float = 120) -> int:
    """Start a worker in the background (detached, its output in a log beside the socket)
    and wait until it serves. Returns its process ID."""
    found = running()
    if found is not None:
        return found
    path = socket_path()
    log = path.with_suffix(".log")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        with open(log, "ab") as out, open(os.devnull, "rb") as nothing:
            os.dup2(nothing.fileno(), 0)
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
        path.with_suffix(".pid").write_text(str(os.getpid()))
        try:
            serve(idle_minutes)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = running()
        if found is not None:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"the worker did not start within {timeout:.0f} s; see {log}")


def stop() -> bool:
    """Stop the running worker; whether one was running."""
    pid = running()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 70
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    socket_path().with_suffix(".pid").unlink(missing_ok=True)
    return True
