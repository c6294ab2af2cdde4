"""Closing the listening socket without resetting the connections queued on it.

The kernel completes TCP handshakes on its own and queues the connections until a process
accepts them. When the last descriptor of a listening socket closes, every connection still in
that queue, or still in its handshake, is reset. The client (a proxy) may already have sent its
request on it: for a POST that is a 502, since nginx does not send a request it has written once
to another server. Under load a proxy that learns of a stop only from refused connections (nginx
without health checks) keeps opening connections right up to the close, so a few are always in
the queue at that instant.

Hence, when this worker is about to close the socket for good (gunicorn's master has already
closed its copy and no process but its workers holds it: a stop, not a reload), it first makes
the socket ignore new connection attempts (a classic BPF filter that drops bare SYNs; the client
resends its SYN a second later and, the socket closed by then, is refused and goes elsewhere),
keeps accepting while the handshakes under way complete and the queue empties, and only then
closes. During a reload (SIGHUP) the master and the new workers keep the socket open and keep
accepting, so the close resets nothing, and the filter, which would apply to them too, is not
used.

Linux only; elsewhere (or without /proc) the worker just closes, as aiohttp does."""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import struct

# Long enough for a handshake under way when the filter went on to complete, across a LAN and
# a busy event loop; short next to SHUTDOWN_DELAY.
SETTLE = 0.1
QUEUE_WAIT = 1.0  # at most, for the other workers to accept what is queued

_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
# A socket filter sees a TCP segment from its TCP header: byte 13 holds the flags. Drop a segment
# whose SYN is set and ACK is not (a new connection attempt); pass everything else.
_DROP_BARE_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]
    (0x54, 0, 0, 0x12),  # and #(SYN | ACK)
    (0x15, 0, 1, 0x02),  # jeq #SYN, drop, pass
    (0x06, 0, 0, 0),  # drop: ret #0
    (0x06, 0, 0, 0xFFFFFFFF),  # pass: ret #-1 (the whole segment)
)
# struct tcp_info of a listening socket: tcpi_unacked is its accept queue's length.
_TCP_INFO_UNACKED = 24


def closing_for_good(sock: socket.socket, master_pid: int) -> bool:
    """Whether `sock` is a TCP listener that closes for good once this master's workers close it:
    no other process holds it. On SIGTERM the master has closed its copy; on SIGHUP it keeps it
    for the new workers; after a USR2 upgrade a new master's workers hold it too."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return False
    target = f"socket:[{os.fstat(sock.fileno()).st_ino}]"
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return False  # cannot tell: close as aiohttp does
    me = os.getpid()
    for pid in pids:
        if pid != me and _holds(pid, target) and (pid == master_pid or _parent(pid) != master_pid):
            return False
    return True


def _holds(pid: int, target: str) -> bool:
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return False  # gone, or another user's: it cannot hold this socket
    for name in names:
        try:
            if os.readlink(f"{folder}/{name}") == target:
                return True
        except OSError:
            continue
    return False


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"
    except (OSError, IndexError, ValueError):
        return 0


def ignore_new_connections(sock: socket.socket) -> bool:
    """Attach the filter that drops new connection attempts; False where that is not possible."""
    program = b"".join(struct.pack("HBBI", *instruction) for instruction in _DROP_BARE_SYN)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(_DROP_BARE_SYN), ctypes.addressof(buffer))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def queued(sock: socket.socket) -> int:
    """Connections in the socket's accept queue, handshake done, not yet accepted."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, _TCP_INFO_UNACKED)[0])


async def empty_queue(sockets: list[socket.socket]) -> None:
    """With new connections refused, let the event loop accept what is queued or completing."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(SETTLE)
    deadline = loop.time() + QUEUE_WAIT
    while any(queued(sock) for sock in sockets) and loop.time() < deadline:  # noqa: ASYNC110 (the kernel's accept queue: no event to wait on)
        await asyncio.sleep(0.01)
