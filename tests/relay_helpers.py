"""Active attackers on loopback for the authentication tests: a relay that passes a real
host's handshake through to a real board and then tampers with the session, and impostor
"devices" that answer a host without knowing its key."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from uota_core.seal import PROTO


HOLD = 2  # records a reordering relay holds back before sending them swapped


def record_size(head: bytes) -> int:
    """Bytes of the record whose 2-byte length header is `head` (the length travels in clear)."""
    from uota_core.seal import TAG

    n = int.from_bytes(head, "big")
    return 2 + -(-n // 16) * 16 + TAG


class _OneShotServer:
    """A loopback listener that serves one connection in a thread of its own (`_serve`)."""

    def _listen(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.addr = self._server.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _accept(self) -> socket.socket | None:
        self._server.settimeout(10)
        try:
            return self._server.accept()[0]
        except OSError:
            return None

    def _serve(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Relay(_OneShotServer):
    """A man in the middle on loopback, in front of the board's OTA port (or, with `rio`, its
    RemoteIO port): it forwards the host's handshake as is, then, once the board answered the
    host's proof with `ok`, does `mode` to what follows in direction `way` ("up": host to
    board, "down": board to host): "inject" sends `inject` as if from the other end,
    "reorder" swaps the first two records, "replay" sends the first one twice, "drop" leaves
    it out, "read" only listens. It records all it saw. `edit_hello` rewrites the board's
    hello line (its first line: the reply to `hello`, or RemoteIO's greeting) on its way to
    the host."""

    def __init__(self, target: tuple[str, int], mode: str, inject: bytes = b"", way: str = "up",
                 rio: bool = False, edit_hello: Callable[[bytes], bytes] | None = None) -> None:
        self.target, self.mode, self.inject, self.way = target, mode, inject, way
        self.edit_hello = edit_hello
        self.hello_sent = b""  # the hello line as the host got it, once edited
        self._hello = b""  # the board's bytes held back until its hello line is whole
        # the host's proof, and the board's answer to it (the last bytes in clear)
        self.proof, self.ok = (b'{"auth": "', b'{"auth": "ok"}\n') if rio else (b"\nauth ", b"ok\n")
        self.to_board = bytearray()  # what the board got from the relay
        self.to_host = bytearray()  # what the board sent, as the relay saw it
        self.sealed = threading.Event()  # the board accepted the host's proof
        self.board_closed = threading.Event()
        self._held: list[bytes] = []
        self._done = False
        self._board: socket.socket | None = None
        self._listen()

    def _serve(self) -> None:
        host = self._accept()
        if host is None:
            return
        board = self._board = socket.create_connection(self.target, timeout=5)
        pending = b""  # an incomplete record, waiting for the rest
        after_proof = b""  # what the board sent since the host's proof went through
        deadline = time.monotonic() + 60  # bounded: one session
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([host, board], [], [], 0.1)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except ConnectionResetError:
                        data = b""  # a reset: the board closed with our bytes unread
                    if not data:
                        if s is board:
                            self.board_closed.set()
                        return
                    if s is board:
                        self.to_host += data
                        if self.edit_hello and not self.hello_sent:
                            self._hello += data
                            if b"\n" not in self._hello:
                                continue
                            line, rest = self._hello.split(b"\n", 1)
                            self.hello_sent = self.edit_hello(line + b"\n")
                            data = self.hello_sent + rest
                        if not self.sealed.is_set() and self.proof in b"\n" + bytes(self.to_board):
                            after_proof += data
                            if after_proof.startswith(self.ok):
                                # the board's answer ends the clear part; records follow it
                                cut = len(data) - (len(after_proof) - len(self.ok))
                                self.sealed.set()
                                if self.mode == "inject" and self.way == "up":
                                    self._send(board, self.inject)
                                host.sendall(data[:cut])
                                if self.mode == "inject" and self.way == "down":
                                    host.sendall(self.inject)
                                data = data[cut:]
                        if not data:
                            continue
                    to = host if s is board else board
                    if not self.sealed.is_set() or self.mode in ("read", "inject") \
                            or (self.way == "up") != (s is host):
                        self._send(to, data)
                    else:
                        pending = self._tamper(to, pending + data)
        except OSError:
            return
        finally:
            host.close()
            board.close()

    def _send(self, to: socket.socket, data: bytes) -> None:
        if to is not self._board:
            to.sendall(data)
            return
        self.to_board += data
        try:
            to.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            # the board closed with bytes unread (a reset) before these could go: when the
            # host's next record and that reset reach the relay in the same round, the send
            # is where the relay learns it
            self.board_closed.set()
            raise

    def _tamper(self, to: socket.socket, pending: bytes) -> bytes:
        """Cut the stream into whole records and pass them on as `mode` says; the bytes of
        an incomplete record are returned, to wait for the rest."""
        while len(pending) >= 2 and len(pending) >= record_size(pending[:2]):
            size = record_size(pending[:2])
            rec, pending = pending[:size], pending[size:]
            if self._done:
                self._send(to, rec)
            elif self.mode == "replay":
                self._send(to, rec + rec)
                self._done = True
            elif self.mode == "drop":
                self._done = True  # the first record never arrives
            else:  # reorder
                self._held.append(rec)
                if len(self._held) == HOLD:
                    self._send(to, b"".join(reversed(self._held)))
                    self._done = True
        return pending


class Impostor(_OneShotServer):
    """A fake device on loopback that sends `greeting` first, answers each line as
    `answer(line)` says (None: hang up) and records every byte a host sends it."""

    def __init__(self, answer: Callable[[bytes], bytes | None], greeting: bytes = b"") -> None:
        self.answer = answer
        self.greeting = greeting
        self.received = bytearray()
        self.done = threading.Event()
        self._listen()

    def _serve(self) -> None:
        conn = self._accept()
        if conn is None:
            self.done.set()
            return
        conn.settimeout(10)
        buf = b""
        try:
            conn.sendall(self.greeting)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                self.received += data
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    reply = self.answer(line)
                    if reply is None:
                        return
                    conn.sendall(reply)
        except OSError:
            return
        finally:
            conn.close()
            self.done.set()

    def wait(self) -> bytes:
        """Everything the host sent, once it hung up."""
        self.done.wait(10)
        return bytes(self.received)


def fake_hello(proto: int = PROTO, auth: bool = True, iterations: int = 100_000) -> dict:
    return {"proto": proto, "id": "0badc0de", "nonce": os.urandom(16).hex(), "auth": auth,
            "salt": os.urandom(16).hex() if proto >= 3 else "", "iter": iterations if proto >= 3 else 0,
            "signed": False, "version": "", "release": 0, "free": 100000}


def ota_impostor(hello: dict) -> Callable[[bytes], bytes | None]:
    """Answers like an OTA port that doesn't know the key: a made-up proof for any challenge."""

    def answer(line: bytes) -> bytes | None:
        if line == b"hello":
            return b"hello " + json.dumps(hello).encode() + b"\n"
        if line.startswith(b"challenge "):
            return b"proof " + os.urandom(32).hex().encode() + b"\n"
        if line.startswith(b"auth "):
            return b"ok\n"  # whatever the host proves: "welcome"
        return b"ok\n"  # and it accepts everything after that

    return answer

