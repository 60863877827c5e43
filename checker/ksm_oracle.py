"""The live kernel as KSM oracle: run a scenario with real processes, real madvise, real ksmd.

One forked worker per scenario process owns a private anonymous mapping (``mmap`` through
ctypes, ``MADV_NOHUGEPAGE``) filled with the labels' bytes, and obeys commands on a Unix
socket: ``madvise`` (MADV_MERGEABLE=12 / MADV_UNMERGEABLE=13), ``write``, ``munmap``, ``fork``
(the new worker gets its socket through SCM_RIGHTS) and ``exit``. A keeper process holds an
untouched VM_MERGEABLE page (no anon_vma, so no rmap_item) so that ksmd keeps completing
passes even when no scenario process is registered.

ksmd runs one full scan at a time: ``run=1``, wait for ``full_scans`` to advance, ``run=0``
(the write waits for the batch to end, and with ``pages_to_scan`` above the scenario's size
a batch ends exactly at the pass end, with the cursor back at the list head, as the model
assumes). Counters are read while ksmd is stopped. A "scan" step repeats passes until the
counters are unchanged over two consecutive passes, exactly as :func:`spec.ksm.scan`.

Every knob touched is saved first and restored in a ``finally`` (also on SIGTERM, which is
turned into KeyboardInterrupt); every worker is killed; ``run=2`` unmerges at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

from checker.ksm_scenario import PAGE_SIZE, Scenario, content_bytes
from checker.live import sigterm_as_interrupt
from spec import ksm

SYSFS = "/sys/kernel/mm/ksm"
MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_NOHUGEPAGE = 12, 13, 14
PROT_RW, MAP_PRIVATE_ANON = 0x3, 0x22
#: knobs the oracle may write, in the order they are set (max_page_sharing and
#: merge_across_nodes need an empty stable tree, so they follow run=2).
TOUCHED = ("max_page_sharing", "merge_across_nodes", "use_zero_pages", "smart_scan",
           "stable_node_chains_prune_millisecs", "pages_to_scan", "sleep_millisecs")
DEFAULT_PAGES_TO_SCAN = 100_000
DEFAULT_SLEEP_MS = 20


class OracleError(Exception):
    """The live kernel cannot run the scenario (missing interface, time bound, worker)."""


def unavailable() -> str:
    """Why the oracle cannot run here ('' when it can)."""
    if not os.path.isdir(SYSFS):
        return f"{SYSFS} is missing (kernel without CONFIG_KSM)"
    if os.geteuid() != 0 or not os.access(f"{SYSFS}/run", os.W_OK):
        return f"{SYSFS}/run is not writable (needs root)"
    if _read_str("advisor_mode").find("[none]") < 0:
        return "advisor_mode is not 'none' (pages_to_scan would be refused)"
    return ""


def _read_str(name: str) -> str:
    with open(f"{SYSFS}/{name}") as f:
        return f.read().strip()


def _read(name: str) -> int:
    return int(_read_str(name))


def _write(name: str, value: int) -> None:
    # max_page_sharing and merge_across_nodes refuse (EBUSY) while an exiting mm still
    # holds KSM pages; unmerge again and retry for a bounded time.
    for attempt in range(200):
        try:
            with open(f"{SYSFS}/{name}", "w") as f:
                f.write(str(value))
            return
        except OSError as e:
            if e.errno != 16 or attempt == 199:
                raise
            time.sleep(0.01)
            with open(f"{SYSFS}/run", "w") as f:
                f.write("2")


def counters() -> dict[str, int]:
    return {k: _read(k) for k in ksm.COUNTERS}


def ksm_stat(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/ksm_stat") as f:
        for line in f:
            key, _, val = line.partition(" ")
            if key in ksm.PROCESS_COUNTERS:
                out[key] = int(val)
    return out


@contextlib.contextmanager
def ksm_knobs(knobs: dict[str, int]) -> Iterator[dict[str, int]]:
    """Save run and every knob in TOUCHED, unmerge (run=2), set ``knobs``, stop ksmd (run=0);
    on the way out (also on error or interrupt) unmerge again and restore everything."""
    why = unavailable()
    if why:
        raise OracleError(why)
    with _exclusive():
        yield from _ksm_knobs_locked(knobs)


LOCK_PATH = "/run/lock/mmspec-ksm-oracle.lock"
LOCK_WAIT_S = 300.0


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One oracle at a time on this machine: two runs interleaved would each save the
    other's settings as the originals (and their counters are global anyway)."""
    import fcntl
    path = LOCK_PATH if os.path.isdir(os.path.dirname(LOCK_PATH)) else "/tmp/mmspec-ksm.lock"
    with open(path, "w") as f:
        end = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise OracleError(f"another KSM oracle run holds {path}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ksm_knobs_locked(knobs: dict[str, int]) -> Iterator[dict[str, int]]:
    saved = {k: _read(k) for k in (*TOUCHED, "run")}
    with sigterm_as_interrupt():
        try:
            _write("run", 2)
            for k in TOUCHED:
                if k in knobs and _read(k) != knobs[k]:
                    _write(k, knobs[k])
            _write("run", 0)
            yield saved
        finally:
            _write("run", 2)
            for k in TOUCHED:
                if _read(k) != saved[k]:
                    _write(k, saved[k])
            if saved["run"] != 2:
                _write("run", saved["run"])


# --- workers --------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _send(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def _recv(sock: socket.socket) -> tuple[Any, list[int]]:
    buf = b""
    fds: list[int] = []
    while not buf.endswith(b"\n"):
        msg, got, _flags, _addr = socket.recv_fds(sock, 1 << 16, 4)
        if not msg:
            raise EOFError
        buf += msg
        fds += got
    return json.loads(buf), fds


class _Mapping:
    def __init__(self, contents: list[str]) -> None:
        self.n = len(contents)
        addr = _libc.mmap(None, self.n * PAGE_SIZE, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        self.addr = int(addr)
        _check(_libc.madvise(self.addr, self.n * PAGE_SIZE, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE")
        for i, c in enumerate(contents):
            self.store(i, c)

    def store(self, i: int, label: str) -> None:
        ctypes.memmove(self.addr + i * PAGE_SIZE, content_bytes(label), PAGE_SIZE)

    def madvise(self, start: int, count: int, advice: int) -> None:
        _check(_libc.madvise(self.addr + start * PAGE_SIZE, count * PAGE_SIZE, advice),
               "madvise")


def _worker(sock: socket.socket, mapping: _Mapping | None) -> None:
    """The command loop of one scenario process (never returns)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked workers are reaped by the kernel
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            cmd, fds = _recv(sock)
            op = cmd["op"]
            try:
                if op == "init":
                    mapping = _Mapping(cmd["contents"])
                elif op == "keeper":
                    addr = _libc.mmap(None, PAGE_SIZE, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
                    _check(_libc.madvise(addr, PAGE_SIZE, MADV_MERGEABLE), "keeper madvise")
                elif op == "exit":
                    _send(sock, {"ok": True})
                    os._exit(0)
                else:
                    assert mapping is not None
                    if op == "madvise":
                        ranges = cmd["ranges"]
                        advice = MADV_MERGEABLE if cmd["advice"] == "mergeable" \
                            else MADV_UNMERGEABLE
                        for start, count in ranges:
                            mapping.madvise(start, count, advice)
                    elif op == "write":
                        mapping.store(cmd["page"], cmd["content"])
                    elif op == "munmap":
                        _check(_libc.munmap(mapping.addr + cmd["start"] * PAGE_SIZE,
                                            cmd["count"] * PAGE_SIZE), "munmap")
                    elif op == "fork":
                        child_sock = socket.socket(fileno=fds[0])
                        pid = os.fork()
                        if pid == 0:
                            sock.close()
                            _worker(child_sock, mapping)
                        child_sock.close()
                        _send(sock, {"ok": True, "pid": pid})
                        continue
                _send(sock, {"ok": True, "pid": os.getpid()})
            except OSError as e:
                _send(sock, {"ok": False, "error": str(e)})
    except BaseException:
        os._exit(1)
    os._exit(0)


class LiveKsm:
    """Scenario processes on the live kernel, with the spec's operation names."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.socks: dict[str, socket.socket] = {}
        self.pids: dict[str, int] = {}
        self.mapped: dict[str, list[bool]] = {}
        self.all_pids: list[int] = []
        self.direct: list[int] = []
        self.extra_passes = 0
        self.passes = 0
        self.keeper = self._spawn("_keeper")
        self._call("_keeper", {"op": "keeper"})

    def _spawn(self, name: str) -> int:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            a.close()
            _worker(b, None)
        b.close()
        self.socks[name] = a
        self.pids[name] = pid
        self.all_pids.append(pid)
        self.direct.append(pid)
        return pid

    def _call(self, name: str, cmd: dict[str, Any], fds: list[int] | None = None) -> Any:
        sock = self.socks[name]
        sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        try:
            _send(sock, cmd, fds)
            reply, _ = _recv(sock)
        except (TimeoutError, EOFError, OSError) as e:
            raise OracleError(f"worker {name!r} did not answer {cmd['op']!r}: {e}") from None
        if not reply.get("ok"):
            raise OracleError(f"worker {name!r}: {cmd['op']} failed: {reply.get('error')}")
        return reply

    def create_process(self, name: str, contents: tuple[str, ...]) -> None:
        self._spawn(name)
        self._call(name, {"op": "init", "contents": list(contents)})
        self.mapped[name] = [True] * len(contents)

    def madvise(self, p: str, start: int, count: int, advice: str) -> None:
        # madvise over holes fails with ENOMEM after applying to the mapped parts: send
        # only mapped runs, as the model applies the advice to mapped pages only.
        ranges, run_start = [], None
        m = self.mapped[p]
        for i in range(start, start + count + 1):
            inside = i < start + count and m[i]
            if inside and run_start is None:
                run_start = i
            elif not inside and run_start is not None:
                ranges.append([run_start, i - run_start])
                run_start = None
        self._call(p, {"op": "madvise", "ranges": ranges, "advice": advice})

    def write(self, p: str, page: int, content: str) -> None:
        self._call(p, {"op": "write", "page": page, "content": content})

    def munmap(self, p: str, start: int, count: int) -> None:
        self._call(p, {"op": "munmap", "start": start, "count": count})
        for i in range(start, start + count):
            self.mapped[p][i] = False

    def fork(self, p: str, child: str) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            reply = self._call(p, {"op": "fork"}, [b.fileno()])
        finally:
            b.close()
        self.socks[child] = a
        self.pids[child] = reply["pid"]
        self.all_pids.append(reply["pid"])
        self.mapped[child] = list(self.mapped[p])

    def exit_process(self, p: str) -> None:
        pid = self.pids.pop(p)
        self._call(p, {"op": "exit"})
        self.socks.pop(p).close()
        if pid in self.direct:
            os.waitpid(pid, 0)
        else:
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < self.deadline:
                time.sleep(0.001)

    def prctl_memory_merge(self, p: str, value: int) -> None:
        raise OracleError("PR_SET_MEMORY_MERGE is not run on the live kernel: it would make "
                          "the worker's Python heap mergeable")

    def full_scan(self) -> None:
        done = one_pass(self.deadline)
        self.passes += done
        self.extra_passes += done - 1

    def observe(self) -> dict[str, Any]:
        rec: dict[str, Any] = counters()
        rec["processes"] = {n: ksm_stat(pid) for n, pid in self.pids.items()
                            if not n.startswith("_")}
        return rec

    def scan(self) -> dict[str, Any]:
        history = [ksm._fingerprint(self.observe())]
        for _ in range(ksm.MAX_PASSES):
            self.full_scan()
            history.append(ksm._fingerprint(self.observe()))
            if history[-1] == history[-2] == history[-3] if len(history) >= 3 else False:
                return self.observe()
        raise OracleError(f"counters did not settle within {ksm.MAX_PASSES} full scans")

    def close(self) -> None:
        for pid in self.all_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.direct:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for s in self.socks.values():
            s.close()
        # forked workers are reaped by their parents; wait until their mms are gone, or a
        # following run=2 skips them (ksm_test_exit) and the knobs refuse to change (EBUSY)
        end = time.monotonic() + 10
        for pid in self.all_pids:
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
                time.sleep(0.001)


def run(sc: Scenario, timeout: float = 60.0) -> dict[str, Any]:
    """Run ``sc`` on the live kernel: ``{"scans": [...], "passes": n, "extra_passes": n}``."""
    if sc.model_only:
        raise OracleError(f"model-only scenario: {sc.model_only}")
    total = sum(len(c) for c in sc.processes.values()) * (
        1 + sum(st["op"] == "fork" for st in sc.steps))
    knobs = dict(sc.knobs)
    knobs.setdefault("pages_to_scan", max(DEFAULT_PAGES_TO_SCAN, 2 * total))
    knobs.setdefault("sleep_millisecs", DEFAULT_SLEEP_MS)
    if knobs["pages_to_scan"] <= total:
        raise OracleError(f"pages_to_scan {knobs['pages_to_scan']} must exceed the "
                          f"{total} pages of the scenario (one batch = one full scan)")
    deadline = time.monotonic() + timeout
    from checker.ksm_scenario import apply_step
    with ksm_knobs(knobs):
        live = LiveKsm(deadline)
        try:
            for name, contents in sc.processes.items():
                live.create_process(name, contents)
            scans = []
            for st in sc.steps:
                rec = apply_step(live, st)
                if rec is not None:
                    scans.append(rec)
        finally:
            live.close()
    return {"scans": scans, "passes": live.passes, "extra_passes": live.extra_passes}


def one_pass(deadline: float) -> int:
    """Let ksmd complete one full scan (run=1 until full_scans advances), then stop it at
    the pass boundary (run=0 waits for the batch). Returns how many passes completed."""
    before = _read("full_scans")
    _write("run", 1)
    try:
        while _read("full_scans") == before:
            if time.monotonic() > deadline:
                raise OracleError("ksmd did not complete a full scan in time")
            time.sleep(0.0005)
    finally:
        _write("run", 0)
    return _read("full_scans") - before


def settle(pids: list[int], deadline: float) -> dict[str, Any]:
    """Run ksmd pass by pass until the counters (and the ksm_stat of ``pids``) are unchanged
    over two consecutive full scans; the knobs must already be set (see :func:`ksm_knobs`)."""

    def observe() -> dict[str, Any]:
        rec: dict[str, Any] = counters()
        rec["processes"] = {str(p): ksm_stat(p) for p in pids}
        return rec

    history = [ksm._fingerprint(observe())]
    for _ in range(ksm.MAX_PASSES):
        one_pass(deadline)
        history.append(ksm._fingerprint(observe()))
        if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
            return observe()
    raise OracleError(f"counters did not settle within {ksm.MAX_PASSES} full scans")
