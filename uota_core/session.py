"""The host side of the OTA protocol (docs/protocol.md) over any `Link`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from hmac import compare_digest
from pathlib import Path
from typing import Any

from uota_core.auth import (MAX_ITERATIONS, MIN_ITERATIONS, PASSWD_SIG_TAG, PBKDF2_ITERATIONS, command_signature,
                             delete_signature, derive_key, manifest_signature, new_salt, passwd_request, proven_key)
from uota_core.config import check_version
from uota_core.errors import UotaError
from uota_core.link import START_TIMEOUT, Closing, Link, LinkClosed, LinkError
from uota_core.seal import PROTO, SealedLink, SessionKeys, hello_sum, proof

Progress = Callable[[int], None]  # called with the byte count of each chunk sent
MANIFEST_LINES_MAGIC = "uota-manifest-lines 1 "
PACKED_CHUNK = 1024  # bytes of a zfile body per write, so progress moves during big files
COMMIT_WAIT = 120.0  # seconds for end_ota's reply, plus this per file the commit moves:
COMMIT_WAIT_PER_FILE = 0.2  # a move with its backup on an ESP32's LittleFS takes tens of ms


class DeviceError(UotaError):
    """The device refused a request (an `error: ...` reply)."""


class AuthError(DeviceError):
    """Wrong or missing OTA password, or a device that can't prove it knows it."""


REBOOTSTRAP = "re-run `uota bootstrap` over USB to install the current stack and its key"


def older_stack(proto: int, salted: bool, who: str = "the device") -> str:
    """Why a device announcing protocol `proto` (< PROTO), or a key without a PBKDF2 salt,
    is refused, and what to do."""
    why = ("its password check can be cracked offline" if proto < 3 or not salted else
           "its handshake leaves the hello (mpy, version) open to a relay's edits" if proto < 4 else
           "the password alone can change its password")
    return f"{who} runs an older uota stack (protocol {proto}: {why}); {REBOOTSTRAP}"


class InflateUnavailable(DeviceError):
    """The device had no memory for a `zfile` window: the file must go plain."""


class SignatureError(DeviceError):
    """The device refused the manifest signature."""


@dataclass(frozen=True)
class DeviceInfo:
    proto: int
    id: str
    nonce: str
    auth: bool
    signed: bool
    version: str
    release: int
    free: int
    firmware: str = ""
    mpy: int = 0  # the .mpy format version the board loads (0: unknown)
    deflate: int = 0  # window bits of the raw deflate `zfile` bodies it inflates (0: none)
    salt: str = ""  # PBKDF2 salt (hex) and iterations of the device's OTA key
    iter: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeviceInfo":
        return cls(proto=int(data.get("proto", 2)), id=str(data.get("id", "")), nonce=str(data.get("nonce", "")),
                   auth=bool(data.get("auth")), signed=bool(data.get("signed")),
                   version=str(data.get("version", "")), release=int(data.get("release", 0)),
                   free=int(data.get("free", 0)), firmware=str(data.get("firmware", "")),
                   mpy=int(data.get("mpy", 0)), deflate=int(data.get("deflate", 0)),
                   salt=str(data.get("salt", "")), iter=int(data.get("iter", 0)))


@dataclass(frozen=True)
class SentFile:
    """A file whose body is on the link and whose reply hasn't been read yet."""

    path: str
    short: str  # why the body sent is not the file ("" when it is)


@dataclass(frozen=True)
class Installed:
    """What the last commit installed on the device."""

    version: str
    release: int
    files: dict[str, str]


class Session(Closing):
    """One connection to a device's OTA server."""

    def __init__(self, link: Link, password: str = "", signing_key: str = "", key_cache: Path | None = None) -> None:
        self.link = link
        self.password = password
        self.signing_key = signing_key
        self.key_cache = key_cache  # a project's derived keys (auth.proven_key)
        self.info: DeviceInfo | None = None
        self.authenticated = False
        self.host_nonce = ""
        self.hello_sum = b""  # sha256 of the hello line as received: both proofs cover it
        self._key = b""  # the device's OTA key, once derived for this connection

    def close(self) -> None:
        self.link.close()

    # -- framing --------------------------------------------------------------------

    def _send_line(self, line: str) -> None:
        self.link.write(line.encode() + b"\n")

    def _reply(self, timeout: float | None = None) -> str:
        return self.link.readline(timeout).decode(errors="replace").rstrip("\r\n")

    def request(self, line: str, timeout: float | None = None) -> str:
        """Send one command, return its reply line; an `error: ...` reply raises DeviceError."""
        self._send_line(line)
        return self._check(self._reply(timeout), line.split(" ", 1)[0])

    def _check(self, reply: str, cmd: str) -> str:
        if reply.startswith("error: "):
            text = reply[7:]
            if text in ("auth required", "auth failed"):
                raise AuthError(f"the device refused `{cmd}`: {text}: set otaPassword in config/.ota.secrets.json "
                                "to the board's password, or re-provision the board over USB with `uota bootstrap`")
            raise DeviceError(f"the device refused `{cmd}`: {text}")
        return reply

    def _blob(self, line: str, timeout: float | None = None) -> bytes:
        size = self.request(line, timeout)
        try:
            n = int(size)
        except ValueError:
            raise DeviceError(f"unexpected reply to `{line}`: {size!r}") from None
        return self.link.read_exact(n, timeout)

    # -- handshake ------------------------------------------------------------------

    def hello(self) -> DeviceInfo | None:
        """Negotiate the extensions; None if the device only speaks the documented set."""
        self._send_line("hello")
        # its exact bytes: the proofs cover them; it may come once another session ends
        line = self.link.readline(max(self.link.timeout, START_TIMEOUT))
        reply = line.decode(errors="replace").rstrip("\r\n")
        if reply.startswith("error: unknown command"):
            return None
        if not reply.startswith("hello "):
            raise DeviceError(f"unexpected reply to hello: {reply[:80]!r}")
        self.info = DeviceInfo.from_json(json.loads(reply[6:]))
        self.hello_sum = hello_sum(line)
        self.authenticated = not self.info.auth
        return self.info

    def open(self) -> DeviceInfo | None:
        """hello, then the mutual authentication if the device asks for it. A project with a
        password talks only to a device that proves it knows the key (docs/protocol.md)."""
        info = self.hello()
        if self.password and (info is None or not info.auth):
            raise AuthError(f"{self.link.name} asks for no OTA password, but this project has one: refusing to "
                            "talk to it (an impostor, e.g. a spoofed mDNS answer, or a board that lost its "
                            f"secrets: {REBOOTSTRAP})")
        if info is not None and info.auth:
            if not self.password:
                raise AuthError("the device requires an OTA password: set otaPassword in "
                                "config/.ota.secrets.json (run the command in the board's project)")
            self._authenticate(info)
        return info

    def _authenticate(self, info: DeviceInfo) -> None:
        if info.proto < PROTO or not info.salt:
            raise AuthError(older_stack(info.proto, bool(info.salt)))
        if not MIN_ITERATIONS <= info.iter <= MAX_ITERATIONS:
            raise AuthError(f"the device's key uses {info.iter} PBKDF2 iterations (uota wants "
                            f"{MIN_ITERATIONS} to {MAX_ITERATIONS}); {REBOOTSTRAP}")
        import secrets

        self.host_nonce = secrets.token_hex(16)
        reply = self.request(f"challenge {self.host_nonce}")
        # the device proves the key, and the hello this host got, first: nothing keyed goes
        # to one that can't, nor through a relay that edited the hello
        key = reply.startswith("proof ") and proven_key(
            self.password, info.salt, info.iter, cache=self.key_cache, proves=lambda k: compare_digest(
                reply[6:].strip(), proof(k, "dev", info.id, info.nonce, self.host_nonce, self.hello_sum)))
        if not key:
            raise AuthError(f"wrong OTA password, or not your device: {self.link.name} could not prove it knows "
                            "the key for otaPassword in config/.ota.secrets.json, or that it sent the hello this "
                            "host got. If the password is right, this is an impostor or a relay (e.g. a spoofed "
                            "mDNS answer, or one that edited the hello): nothing was sent to it. Otherwise put "
                            "the board's password in config/.ota.secrets.json, or, if it is lost, give the board "
                            "this project's over USB with `uota bootstrap`.")
        self._send_line(f"auth {proof(key, 'host', info.id, info.nonce, self.host_nonce, self.hello_sum)}")
        reply = self._reply()
        if reply == "error: auth failed":
            raise AuthError("the device refused this host's proof of the OTA password after proving its own: "
                            "a relay tampering with the connection?")
        self._check(reply, "auth")
        # every later byte travels in records under keys from both nonces
        inner = self.link.inner if isinstance(self.link, SealedLink) else self.link
        self.link = SealedLink(inner, SessionKeys.derive(key, info.id, info.nonce, self.host_nonce))
        self._key = key
        self.authenticated = True

    # -- documented commands ----------------------------------------------------------

    def ping(self) -> bool:
        return self.request("ping") == "pong"

    def version(self) -> str:
        return str(json.loads(self.request("version")).get("version", ""))

    def ls(self, path: str = "/") -> list[str]:
        """Names in `path`; directories end in '/'."""
        names = []
        line = self.request(f"ls {path}")
        while line:
            names.append(line)
            line = self._reply()
        return names

    def get(self, path: str) -> bytes:
        return self._blob(f"get {path}")

    def rm(self, path: str) -> None:
        self.request(f"rm {path}{self._delete_sig(path)}")

    def wipe(self) -> None:
        self.request(f"wipe{self._delete_sig(None)}", timeout=60)

    def _delete_sig(self, path: str | None) -> str:
        """`;<sig>` (rm) or ` <sig>` (wipe) for a device with a signing key, else ""."""
        if not self._needs_sig("wipe" if path is None else f"rm {path}"):
            return ""
        if ";" in (path or ""):
            raise DeviceError(f"bad path {path!r}: paths never hold ';'")
        # the device strips leading slashes before it checks: sign the path it will see
        rel = path.strip().lstrip("/") if path is not None else None
        assert self.info is not None
        sig = delete_signature(self.signing_key, self.info.id, self.info.nonce, self.info.release, rel)
        return (" " if path is None else ";") + sig

    def _needs_sig(self, what: str) -> bool:
        """True if the device has a signing key (so `what` must be signed); without the key
        here, a SignatureError before anything is sent."""
        if self.info is None or not self.info.signed:
            return False
        if not self.signing_key:
            raise SignatureError(f"`{what}` needs a signature: the device has a signing key; set signingKey in "
                                 "config/.ota.secrets.json to the key provisioned on the device")
        return True

    def installed(self) -> Installed:
        """The installed set: a JSON header line, then sorted `path:sha256` lines."""
        head, *lines = self._blob("files").decode().splitlines()
        info = json.loads(head)
        files = dict(line.rsplit(":", 1) for line in lines if line)
        return Installed(version=str(info.get("version", "")), release=int(info.get("release", 0)), files=files)

    def passwd(self, new_password: str, iterations: int = PBKDF2_ITERATIONS) -> None:
        """Give the device a new key (PBKDF2 of `new_password` under a fresh salt)."""
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            # a count the host refuses at every later hello would lock the board until a USB bootstrap
            raise UotaError(f"{iterations} PBKDF2 iterations: uota accepts {MIN_ITERATIONS} to {MAX_ITERATIONS} "
                            f"(default {PBKDF2_ITERATIONS}); password not changed")
        if self.info is None or not self.info.auth or not self._key:
            raise DeviceError("the device has no OTA password yet: provision the first one over USB "
                              "with `uota bootstrap`")
        signed = self._needs_sig("passwd")  # before the slow key derivation
        salt = new_salt()
        new_key = derive_key(new_password, salt, iterations)
        request = passwd_request(self._key, self.info.nonce, self.host_nonce, new_key, salt, iterations)
        if signed:  # a holder of the password alone must not lock the signer out
            request += ";" + command_signature(self.signing_key, PASSWD_SIG_TAG, self.info.id, self.info.nonce,
                                               self.info.release, request)
        self.request("passwd " + request)
        self.password = new_password

    # -- OTA session ------------------------------------------------------------------

    def start_ota(self) -> None:
        reply = self.request("start_ota")
        if reply != "ready":
            raise DeviceError(f"unexpected reply to start_ota: {reply!r}")

    def send_manifest(self, files: dict[str, str], version: str, wipe: bool = False) -> None:
        """The complete desired set. Extension-aware devices get the lines format (streamed
        to flash on the device, so its size doesn't matter); others the documented JSON."""
        check_version(version)  # the device would refuse it: say so before anything is sent
        header: dict[str, Any] = {"version": version}
        if wipe:
            header["wipe"] = True
        if self.info is None:
            data = json.dumps({**header, "files": files}, separators=(",", ":")).encode()
        else:
            header["release"] = self.info.release + 1
            if self.signing_key:
                header["sig"] = manifest_signature(self.signing_key, self.info.id, self.info.nonce,
                                                   header["release"], version, files, wipe)
            lines = [MANIFEST_LINES_MAGIC + json.dumps(header, separators=(",", ":"))]
            lines += [f"{path}:{files[path]}" for path in sorted(files)]
            data = ("\n".join(lines) + "\n").encode()
        self.link.write(f"manifest {len(data)}\n".encode() + data)
        reply = self._check(self._reply(timeout=60), "manifest")  # resume re-hashes staged files
        if reply == "sig_mismatch":
            if not self.signing_key:
                raise SignatureError("the device only accepts signed updates: set signingKey in "
                                     "config/.ota.secrets.json to the key provisioned on the device")
            raise SignatureError("the device refused the manifest signature: signingKey in "
                                 "config/.ota.secrets.json doesn't match the device's (re-provision with "
                                 "`uota bootstrap`)")
        if reply != "ok":
            raise DeviceError(f"unexpected reply to manifest: {reply!r}")

    def need(self) -> list[str]:
        return list(json.loads(self._blob("need")))

    def send_file(self, path: str, size: int, sha256: str, chunks: Iterable[bytes],
                  progress: Progress | None = None) -> None:
        """Stage one file and wait for the device's verdict."""
        self.file_reply(self.write_file(path, size, sha256, chunks, progress))

    def write_file(self, path: str, size: int, sha256: str, chunks: Iterable[bytes],
                   progress: Progress | None = None) -> SentFile:
        """`file`: the header and the body, without waiting for the reply (see file_reply)."""
        self.link.write(f"file {path};{size};{sha256}\n".encode())
        sent = 0
        try:
            for block in chunks:
                block = block[: size - sent]
                self.link.write(block)
                sent += len(block)
                if progress:
                    progress(len(block))
        except OSError as e:
            short = f"{path} could not be read during the push ({e.strerror or e})"
        else:
            short = f"{path} changed during the push" if sent < size else ""
        if sent < size:
            self.link.write(bytes(size - sent))  # keep the stream in sync; the hash will fail
        return SentFile(path, short)

    def write_packed_file(self, path: str, size: int, sha256: str, body: bytes,
                          progress: Progress | None = None) -> SentFile:
        """`zfile`: the file as a raw deflate `body` (see push.pack) that the device inflates
        while staging; `progress` still counts file bytes, not body bytes."""
        self.link.write(f"zfile {path};{size};{sha256};{len(body)}\n".encode())
        step, reported = PACKED_CHUNK, 0
        for at in range(0, len(body), step):
            self.link.write(body[at : at + step])
            done = size * min(at + step, len(body)) // len(body)
            if progress:
                progress(done - reported)
            reported = done
        return SentFile(path, "")

    def file_reply(self, sent: SentFile) -> None:
        """The device's verdict on a file written earlier; replies come in the order sent."""
        reply = self._check(self._reply(timeout=60), "file")
        if sent.short:
            raise DeviceError(sent.short)
        if reply == "sha256_mismatch":
            raise DeviceError(f"{sent.path} arrived corrupted or changed during the push (sha256 mismatch)")
        if reply == "inflate_unavailable":
            raise InflateUnavailable(f"{sent.path}: the device had no memory to inflate it")
        if reply != "ok":
            raise DeviceError(f"unexpected reply to file {sent.path}: {reply!r}")

    def end_ota(self, files: int = 0) -> None:
        """Commit `files` entries (written or deleted); returns once the device has closed the
        connection to reset. The commit moves each file and its backup on the board's flash:
        thousands of them take minutes on an ESP32, so the wait grows with the count."""
        reply = self.request("end_ota", timeout=COMMIT_WAIT + COMMIT_WAIT_PER_FILE * files)
        if reply != "ok":
            raise DeviceError(f"unexpected reply to end_ota: {reply!r}")
        self.wait_closed()

    def reset(self) -> None:
        self.request("reset")
        self.wait_closed()

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait for the device to drop the connection (it does so right before resetting)."""
        try:
            while True:
                self.link.readline(timeout)
        except LinkClosed:
            pass
        except LinkError:
            pass  # a reset or a timeout: either way this connection is done

    def abort(self) -> None:
        self.request("abort", timeout=60)
