"""A virtual board's state directory: identity, flash image, GPIO file and the run lock."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from pathlib import Path

from uota_core.errors import BoardError
from uota_core.sim.flash import DEFAULT_FLASH_SIZE, FlashImage

GPIO_SLOTS = 128  # 0..63 pin levels, 64..127 ADC raw values (little-endian int32)


def hostname_from(name: str) -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return host[:63] or "uota-board"


class BoardState:
    """Owns a state directory while a supervisor runs its board (an flock on `lock`)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir).resolve()
        self.identity: dict[str, object] = {}
        self._lock_fd: int | None = None

    @property
    def gpio_path(self) -> Path:
        return self.dir / "gpio.bin"

    def open(self, name: str | None, flash_size: int | None, erase: bool) -> FlashImage:
        """Validate or create the directory, lock it, and return its (checked) flash image."""
        self.identity = self._read_identity()
        self._lock()
        ident = self.identity
        stored_size = ident.get("flash_size")
        if flash_size and stored_size and flash_size != stored_size and not erase:
            raise BoardError(
                f"{self.dir} holds a {stored_size}-byte flash; use --erase to make a new {flash_size}-byte one"
            )
        ident["flash_size"] = flash_size or stored_size or DEFAULT_FLASH_SIZE
        ident.setdefault("uid", "24" + secrets.token_hex(5))  # 6 bytes, Espressif-like prefix
        ident["name"] = name or ident.get("name") or self.dir.name
        ident["hostname"] = hostname_from(str(ident["name"]))
        self.save()

        flash = FlashImage(self.dir / "flash.bin", int(ident["flash_size"]))
        if erase or not flash.path.exists():
            flash.create()
        else:
            flash.check()
        if not self.gpio_path.exists() or self.gpio_path.stat().st_size != GPIO_SLOTS * 4:
            self.gpio_path.write_bytes(bytes(GPIO_SLOTS * 4))
        return flash

    def _read_identity(self) -> dict[str, object]:
        sd = self.dir
        if sd.exists() and not sd.is_dir():
            raise BoardError(f"{sd} is a file, not a board state directory")
        sd.mkdir(parents=True, exist_ok=True)
        path = sd / "board.json"
        if path.exists():
            try:
                ident = json.loads(path.read_text())
                if not isinstance(ident, dict) or "uid" not in ident:
                    raise ValueError("no uid")
                return ident
            except (ValueError, OSError) as exc:
                raise BoardError(f"{path} is damaged ({exc}): repair it or use a new state directory") from None
        if any(p.name not in ("lock", "console.log") for p in sd.iterdir()):
            raise BoardError(
                f"{sd} is not a virtual board state directory (no board.json) and is not empty: "
                "give an empty or new directory"
            )
        return {}

    def _lock(self) -> None:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BoardError(
                f"board state {self.dir} is in use by another running virtual board; stop that one first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def save(self) -> None:
        path = self.dir / "board.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.identity, indent=2) + "\n")
        os.replace(tmp, path)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def is_running(state_dir: Path) -> bool:
    """Whether a supervisor holds this state directory right now."""
    lock = state_dir / "lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def flash_of(state_dir: Path) -> FlashImage:
    """The flash image of an existing state directory, without locking it."""
    try:
        ident = json.loads((state_dir / "board.json").read_text())
        return FlashImage(state_dir / "flash.bin", int(ident["flash_size"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BoardError(f"{state_dir} is not a virtual board state directory ({exc}): "
                         f"create one with `uota sim run --state {state_dir}`") from None
