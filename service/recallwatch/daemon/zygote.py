"""A warm parent for evaluation children (the zygote): heavy imports once, one fork per job.

A cold child (``python -m recallwatch.daemon.runner``) imports numpy, faiss and the evaluation
modules (about 0.5 s) and, for the ``st`` and ``openvino`` encoders, sentence-transformers with
torch and transformers (about 6 s on a 2-core machine) before it does any work. The zygote is a
process the daemon starts lazily (``python -m recallwatch.daemon.zygote``, in its own session),
which imports those modules once (``PRELOADS``, by group) and then forks one child per job. The
child runs exactly what a cold child runs (``runner._child``), so isolation is unchanged:

- the child calls ``os.setsid()`` before the zygote reports its pid, so the daemon kills the
  child and everything it started with ``os.killpg(pid, SIGKILL)`` at a timeout or shutdown;
- the zygote reaps the child and reports its exit status as ``Popen.returncode`` spells it
  (``-N``: killed by signal N), so a crash reads exactly as from a cold child;
- a child exits by itself within a second when its parent (the zygote) dies, the zygote kills
  every child's process group and exits when the daemon's end of its socket closes (the daemon
  exited, ``kill -9`` included), so no evaluation outlives the daemon;
- the zygote only imports: it starts no thread and computes nothing, so no thread pool (torch's
  intra-op / OpenMP pool, tokenizers' rayon pool) exists at a fork. It refuses to fork while a
  second Python thread runs (a preload that started one, such as OpenVINO's telemetry at import:
  ``openvino`` itself is not preloaded). Native threads started at import are their libraries'
  own and fork-aware: the OpenBLAS pools of numpy and scipy stop in their at-fork handlers,
  pyarrow's jemalloc background thread stays in the zygote and jemalloc re-initialises in the
  child.

The daemon's side (``Zygotes``) starts one zygote per (interpreter, environment, working
directory), so a child sees the environment a cold child would; a zygote that died is replaced
at the next job and counted (``Zygotes.restarts``), and its jobs in flight fail as ``crashed``.

Protocol: JSON lines over a socketpair. The daemon sends ``{"id", "op": "fork", "target", "kind",
"job", "out", "preload"}`` (``target``: the ``MODULE:FUNCTION`` the child runs) or ``{"op":
"stop"}``; the zygote answers ``{"id", "pid"}`` once the child runs in its own session, ``{"id",
"status"}`` when it exited, or ``{"id", "refused"}`` when it cannot fork safely (then it exits; the
daemon runs that job cold and preloads less).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["PRELOADS", "WarmChild", "Zygote", "ZygoteLost", "Zygotes", "preload", "serve"]

log = logging.getLogger("recallwatch.daemon")

#: What a child imports before its work, by group: the zygote imports them once, a cold child
#: itself (so both measure their start-up the same way). ``st`` serves the ``st`` and
#: ``openvino`` encoders (openvino converts the sentence-transformers model; ``openvino``
#: itself starts a telemetry thread at import, so it is left to the child: about 0.1 s).
PRELOADS: Final[dict[str, tuple[str, ...]]] = {
    "runner": ("recallwatch.daemon.runner",),
    "evaluate": (
        "numpy",
        "faiss",
        "recallwatch.encoders",
        "recallwatch.evaluation.backends",
        "recallwatch.evaluation.pipeline",
        "recallwatch.evaluation.pool",
        "recallwatch.heldout.sets",
    ),
    "audit": (
        "recallwatch.mining.audit",
        "recallwatch.mining.corpus",
        "recallwatch.mining.formats",
        "recallwatch.mining.oracles",
    ),
    "st": (
        "torch",
        "transformers",
        "sentence_transformers",
        "recallwatch.encoders.sentence_transformers",
    ),
}


def preload(groups: Iterable[str]) -> list[str]:
    """Import the modules of ``groups`` (``PRELOADS`` names, or ``module:NAME``); return those
    that were not imported yet.

    An import that fails is left to the job, which then fails with its own clear error (the
    ``st`` extra missing, ...).
    """
    fresh: list[str] = []
    for group in groups:
        _, named, module = group.partition("module:")  # one module by name: ``module:NAME``
        if group == "st":
            # What ``encoders.sentence_transformers.load_offline`` sets before its import:
            # huggingface_hub reads them once, at import.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        for name in (module,) if named else PRELOADS[group]:
            if name in sys.modules:
                continue
            try:
                importlib.import_module(name)
            except Exception:  # the job reports it
                continue
            fresh.append(name)
    return fresh


# -- the zygote process ----------------------------------------------------------------------


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    sock.sendall(json.dumps(msg).encode() + b"\n")


def _fork(req: dict[str, Any], sock: socket.socket, wake: tuple[int, int]) -> int:
    """Fork the child of ``req``; return its pid once it runs in its own session."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(ready_r)
            os.setsid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            for fd in wake:
                os.close(fd)
            os.write(ready_w, b"1")
            os.close(ready_w)
            module, _, name = req["target"].partition(":")
            target = getattr(importlib.import_module(module), name)
            code = target(req["kind"], req["job"], req["out"], warm=True)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    os.close(ready_w)
    os.read(ready_r, 1)  # b"" if it died first: its status follows
    os.close(ready_r)
    return pid


def _unsafe() -> str | None:
    """Why forking now would be unsafe, or None."""
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    return f"Python thread(s) running in the zygote: {', '.join(others)}" if others else None


def serve(fd: int) -> int:
    """The zygote's loop on the socket ``fd``: fork children, report pids and exit statuses."""
    os.dup2(2, 1)  # what children print goes to stderr, as from a cold child
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, int] = {}  # pid -> request id
    buf = b""
    try:
        while True:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
                for pid in list(children):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        _send(sock, {"id": children.pop(pid), "status": _exit_code(status)})
            if sock.fileno() in ready:
                data = sock.recv(65536)
                if not data:
                    return 0  # the daemon is gone
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    if req["op"] == "stop":
                        return 0
                    preload(req.get("preload", ()))
                    why = _unsafe()
                    if why is not None:
                        _send(sock, {"id": req["id"], "refused": why})
                        return 0
                    pid = _fork(req, sock, (wake_r, wake_w))
                    children[pid] = req["id"]
                    _send(sock, {"id": req["id"], "pid": pid})
    except OSError:
        return 0  # the daemon's end broke
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


# -- the daemon's side -----------------------------------------------------------------------


class ZygoteLost(Exception):  # noqa: N818 - a state, reported as a crash by the runner
    """The zygote died (or refused) before the child's outcome was known."""


@dataclass
class WarmChild:
    """A child forked by a zygote, as the runner sees it (``Popen``'s ``pid``/``poll``)."""

    zygote: Zygote
    id: int
    pid: int | None = None
    returncode: int | None = None
    #: Why the outcome is unknown: the zygote died (``lost``) or would not fork (``refused``).
    lost: str | None = None
    refused: str | None = None
    #: Killed before the zygote forked it (timeout or cancel while it imported for this job,
    #: with other children running there): killed as soon as its pid arrives.
    abandoned: bool = False
    _changed: threading.Event = field(default_factory=threading.Event)
    #: Set once the outcome is known (an exit status, or lost, or refused).
    done: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> int | None:
        """The exit code once known (``-N``: signal N); raises ``ZygoteLost`` instead."""
        if self.returncode is None and (self.lost or self.refused):
            if self.pid is not None:  # it exits by itself within a second; no need to wait
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
            raise ZygoteLost(self.lost or self.refused)
        return self.returncode

    def kill(self) -> None:
        """Kill the child and whatever it started; wait until the zygote reaped it."""
        if self.pid is None and not (self.lost or self.refused):
            # The zygote is still importing for this job (or hangs there). Killing it would
            # also end the other evaluations it runs: then this child dies when it is forked.
            if self.zygote.running_others(self):
                self.abandoned = True
                return
            self.zygote.kill()
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        while True:
            self._changed.clear()
            if self.returncode is not None or self.lost or self.refused:
                return
            self._changed.wait(1.0)


class Zygote:
    """One zygote process and the thread that reads its reports."""

    def __init__(self, python: str, env: dict[str, str] | None, groups: Sequence[str]) -> None:
        ours, theirs = socket.socketpair()
        self.groups = tuple(groups)
        self.proc = subprocess.Popen(
            [python, "-m", "recallwatch.daemon.zygote", str(theirs.fileno()), *self.groups],
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,  # a Ctrl-C on the daemon's terminal does not reach it
        )
        theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self._children: dict[int, WarmChild] = {}
        self._next = 0
        #: Why it takes no more jobs (it died, refused, or was killed here); None while it does.
        self.dead: str | None = None
        #: Killed by the daemon (a job's timeout or cancel while it imported), not a crash.
        self.killed = False
        #: It refused to fork (a preload started a thread), not a crash.
        self.refused = False
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def fork(
        self, target: str, kind: str, job_file: str, out_file: str, groups: Sequence[str]
    ) -> WarmChild:
        """Ask for a child running ``target(kind, job_file, out_file, warm=True)``.

        ``target`` is ``MODULE:FUNCTION`` (``runner._child``), imported in the child; its return
        value is the child's exit code.
        """
        with self._lock:
            self._next += 1
            child = WarmChild(self, self._next)
            if self.dead is not None:
                child.lost = self.dead
                child.done.set()
                return child
            self._children[child.id] = child
            msg = {"id": child.id, "op": "fork", "target": target, "kind": kind}
            msg |= {"job": job_file, "out": out_file}
            try:
                _send(self._sock, {**msg, "preload": list(groups)})
            except OSError as exc:
                self._children.pop(child.id)
                child.lost = f"the warm parent process is gone ({exc})"
                child.done.set()
        return child

    def running_others(self, child: WarmChild) -> bool:
        """Whether children other than ``child`` run in this zygote."""
        with self._lock:
            return any(c is not child and c.pid is not None for c in self._children.values())

    def alive(self) -> bool:
        """Whether it still takes jobs."""
        return self.dead is None and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the zygote and its children (which would exit within a second by themselves)."""
        self.killed = True
        with self._lock:
            pids = [c.pid for c in self._children.values() if c.pid is not None]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5.0)

    def stop(self) -> None:
        """Stop it: it kills whatever children still run and exits."""
        with contextlib.suppress(OSError):
            _send(self._sock, {"op": "stop"})
        try:
            self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reader.join(timeout=5.0)
        self._sock.close()

    def _read(self) -> None:
        buf = b""
        why = "the warm parent process died"
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._report(json.loads(line))
        except OSError:
            pass
        code = self.proc.wait()
        if code:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            why = f"the warm parent process was {how}"
        with self._lock:
            self.dead = why
            pending, self._children = list(self._children.values()), {}
        for child in pending:
            if child.refused is None:
                child.lost = why
            child.done.set()
            child._changed.set()

    def _report(self, msg: dict[str, Any]) -> None:
        with self._lock:
            child = self._children.get(msg["id"])
            if child is None:
                return
            if "pid" in msg:
                child.pid = msg["pid"]
                if child.abandoned:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(msg["pid"], signal.SIGKILL)
            elif "status" in msg:
                child.returncode = msg["status"]
                self._children.pop(msg["id"])
                child.done.set()
            elif "refused" in msg:
                self.refused = True
                child.refused = msg["refused"]
                self._children.pop(msg["id"])
                child.done.set()
        child._changed.set()


class Zygotes:
    """The zygotes of one daemon, one per (interpreter, environment, working directory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zygotes: dict[tuple[Any, ...], Zygote] = {}
        #: Zygotes that died and were replaced (logged): ``recallwatch_zygote_restarts_total``.
        self.restarts = 0
        #: Preload groups a zygote refused to fork after (a thread started): not preloaded again.
        self.unsafe: set[str] = set()
        self._closed = False

    def get(self, python: str, env: dict[str, str] | None, groups: Sequence[str]) -> Zygote:
        """The zygote for this interpreter and environment, started (again) if needed."""
        environ = dict(os.environ if env is None else env)
        key = (python, tuple(sorted(environ.items())), os.getcwd())
        wanted = self.safe(groups)
        with self._lock:
            if self._closed:
                raise RuntimeError("the zygotes were closed")
            z = self._zygotes.get(key)
            if z is not None and not z.alive():
                z.stop()
                if not (z.killed or z.refused):
                    self.restarts += 1
                    log.warning("%s; starting a new one", z.dead or "the warm parent process died")
                z = None
            if z is None:
                z = self._zygotes[key] = Zygote(python, env, wanted)
            return z

    def safe(self, groups: Sequence[str]) -> list[str]:
        """``groups`` less those a zygote refused to fork after."""
        return [g for g in groups if g not in self.unsafe]

    def refused(self, groups: Sequence[str], why: str) -> None:
        """A zygote would not fork after importing ``groups``: preload the newest less."""
        with self._lock:
            newest = [g for g in groups if g != "runner" and g not in self.unsafe]
            self.unsafe.update(newest[-1:] if newest else list(groups))
        log.warning("the warm parent refused to fork (%s); this job runs cold", why)

    def pids(self) -> list[int]:
        """The process ids of the zygotes that take jobs."""
        with self._lock:
            return [z.proc.pid for z in self._zygotes.values() if z.alive()]

    def close(self) -> None:
        """Stop every zygote (and any child still running)."""
        with self._lock:
            self._closed = True
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for z in zygotes:
            z.stop()


if __name__ == "__main__":
    _fd = int(sys.argv[1])
    preload(sys.argv[2:])
    _code = serve(_fd)
    sys.stderr.flush()
    os._exit(_code)  # not waiting for any thread a preload started
