"""RemoteIO client: call named handlers on the device and read its print() stream. With the
device's OTA password, the client and the device prove the key to each other and every
frame after that travels in the OTA port's records (docs/protocol.md "RemoteIO").

    with RemoteIOClient("192.168.1.42") as rio:
        rio.call("set_led", state=True)       # -> "ok"
        for line in rio.listen(timeout=5):     # the app's print() output
            ...
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uota_core.auth import MAX_ITERATIONS, MIN_ITERATIONS, proven_key
from uota_core.errors import UotaError
from uota_core.link import (DEFAULT_TIMEOUT, HANDSHAKE_TRIES, START_TIMEOUT, Closing, Link, LinkClosed, LinkError,
                            LinkTimeout, handshaken)
from uota_core.seal import PROTO, RecordError, SessionKeys, hello_sum, proof
from uota_core.session import REBOOTSTRAP, AuthError, older_stack
from uota_core.tcp import REMOTEIO_PORT, TcpLink


class RemoteCallError(UotaError):
    """The device's handler raised (or there is no such handler)."""


def _parse(line: bytes) -> dict[str, Any]:
    """A frame; {} for a line that isn't one (ignored)."""
    try:
        frame = json.loads(line)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}


class RemoteIOClient(Closing):
    def __init__(self, host: str | None = None, port: int = REMOTEIO_PORT, timeout: float = DEFAULT_TIMEOUT,
                 link: Link | None = None, password: str = "", key_cache: Path | None = None) -> None:
        if link is None and host is None:
            raise ValueError("RemoteIOClient needs a host or a link")
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._prints: deque[str] = deque(maxlen=10000)
        self.device_id = ""
        self.sealed = False  # frames travel in records (the device has a password)
        self.key_cache = key_cache  # a project's derived keys (auth.proven_key)

        def handshake(opened: Link) -> None:
            self.link = opened
            self._handshake(password)

        tries = HANDSHAKE_TRIES if link is None else 1  # a link given is the caller's to open again
        handshaken(tries, lambda: link or TcpLink(host or "", port, timeout=timeout), handshake)

    def _handshake(self, password: str) -> None:
        """Read the device's hello; answer its challenge if it has a password."""
        line = self._line(max(self.timeout, START_TIMEOUT))  # it may come once an OTA session ends
        frame = _parse(line)
        while "p" in frame:  # output ahead of the hello (over serial, an app just starting)
            self._prints.append(str(frame["p"]))
            line = self._line(self.timeout)
            frame = _parse(line)
        hello = frame.get("hello")
        if not isinstance(hello, dict):
            raise LinkError(f"{self.link.name} is not a uota RemoteIO server (no hello)")
        self.device_id = str(hello.get("id", ""))
        if not hello.get("auth"):
            if password:  # as the OTA port: a project with a password talks only to a board that has it
                raise AuthError(f"{self.link.name}'s RemoteIO asks for no OTA password, but this project has one: "
                                "refusing to talk to it (an impostor, e.g. a spoofed mDNS answer, or a board that "
                                f"lost its secrets: {REBOOTSTRAP})")
            return
        if not password:
            raise AuthError("the device's RemoteIO requires the OTA password: set otaPassword in "
                            "config/.ota.secrets.json")
        self._authenticate(password, hello, hello_sum(line))

    def _authenticate(self, password: str, hello: dict[str, Any], hsum: bytes) -> None:
        """The OTA port's mutual proof (docs/protocol.md "RemoteIO"): the device proves the
        key, and the hello frame this client got (`hsum`, its sha256), before this client
        sends anything keyed."""
        import secrets
        from hmac import compare_digest

        salt, iterations, nonce = str(hello.get("salt", "")), int(hello.get("iter", 0)), str(hello.get("nonce", ""))
        proto = int(hello.get("proto", 2))
        if proto < PROTO or not salt:
            raise AuthError(older_stack(proto, bool(salt), "the device's RemoteIO"))
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise AuthError(f"the device's key uses {iterations} PBKDF2 iterations; {REBOOTSTRAP}")
        host_nonce = secrets.token_hex(16)
        self.link.write(json.dumps({"challenge": host_nonce}).encode() + b"\n")
        reply = self._reply_to("challenge")
        key = proven_key(password, salt, iterations, cache=self.key_cache, proves=lambda k: compare_digest(
            str(reply.get("proof", "")), proof(k, "dev", self.device_id, nonce, host_nonce, hsum)))
        if not key:
            raise AuthError(f"wrong OTA password for RemoteIO, or not your device: {self.link.name} could not prove "
                            "it knows the key for otaPassword in config/.ota.secrets.json, or that it sent the "
                            "hello this host got (if the password is right: an impostor or a relay, e.g. one "
                            "that edited the hello; nothing was sent to it)")
        host_proof = proof(key, "host", self.device_id, nonce, host_nonce, hsum)
        self.link.write(json.dumps({"auth": host_proof}).encode() + b"\n")
        if self._reply_to("auth").get("auth") != "ok":
            raise AuthError("the device's RemoteIO refused this host's proof after proving its own: "
                            "a relay tampering with the connection?")
        # from here on every frame, both ways, travels in the OTA port's records
        self.link = self.link.sealed(SessionKeys.derive(key, self.device_id, nonce, host_nonce))
        self.sealed = True

    def _reply_to(self, what: str) -> dict[str, Any]:
        """The next frame that isn't print output."""
        while True:
            frame = self._frame(self.timeout)
            if "p" in frame:
                self._prints.append(str(frame["p"]))
            elif frame:
                return frame

    def close(self) -> None:
        self.link.close()

    def _frame(self, timeout: float) -> dict[str, Any]:
        return _parse(self._line(timeout))

    def _line(self, timeout: float) -> bytes:
        """The next line from the device, exactly as received."""
        try:
            return self.link.readline(timeout)
        except (LinkTimeout, RecordError):
            raise  # a RecordError says itself what happened to a record from the device
        except LinkError as e:
            if not self.sealed:
                raise
            # the device ends a sealed connection at a record that isn't one or fails its tag
            raise LinkClosed(f"{e}: the device ended the RemoteIO connection: it refused a record from this host "
                             "(altered, injected, replayed, reordered or dropped on the way: a relay?), or it "
                             "reset; reconnect") from None

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Run handler `name` on the device with keyword arguments; its return value."""
        call_id = next(self._ids)
        frame = {"id": call_id, "call": name, "args": kwargs}
        self.link.write(json.dumps(frame, separators=(",", ":")).encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"no answer to remoteio call {name!r} within {self.timeout:.0f}s")
            reply = self._frame(left)
            if "p" in reply:
                self._prints.append(str(reply["p"]))
            elif reply.get("id") == call_id:
                if "e" in reply:
                    raise RemoteCallError(f"remoteio call {name!r} failed on the device: {reply['e']}")
                return reply.get("r")

    def listen(self, timeout: float | None = None) -> Iterator[str]:
        """The device's print() output, chunk by chunk (usually a line each).

        Ends when the device closes the connection or, with `timeout`, when that many
        seconds have passed. Output that arrived during `call()` comes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._prints:
                yield self._prints.popleft()
            left = 3600.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return
            try:
                frame = self._frame(min(left, 3600.0))
            except LinkTimeout:
                if deadline is None:
                    continue
                return
            except LinkClosed:
                return  # the device reset or went away
            if "p" in frame:
                self._prints.append(str(frame["p"]))

    def expect(self, text: str, timeout: float = 5.0) -> str:
        """Wait until a print chunk containing `text` arrives; returns that chunk."""
        for chunk in self.listen(timeout):
            if text in chunk:
                return chunk
        raise LinkTimeout(f"the device did not print {text!r} within {timeout:.0f}s")
