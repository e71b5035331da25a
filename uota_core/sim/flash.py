"""The virtual board's flash: a LittleFS2 image file, readable and writable from the host.

The VM mounts the same image with MicroPython's `vfs.VfsLfs2`; the geometry here must
match what `device/sim/firmware.py` passes to it (4 KB blocks, 32-byte read/prog units).
"""

from __future__ import annotations

import os
from pathlib import Path

from littlefs import LittleFS, LittleFSError

from uota_core.errors import BoardError

BLOCK_SIZE = 4096
DEFAULT_FLASH_SIZE = 2 * 1024 * 1024

# What ESP32 MicroPython's inisetup.py writes into a freshly formatted filesystem.
FACTORY_BOOT_PY = b"""\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""


class FlashImage:
    """A LittleFS2 image file. Host access is only safe while the VM is not running."""

    def __init__(self, path: str | os.PathLike[str], size: int = DEFAULT_FLASH_SIZE) -> None:
        if size % BLOCK_SIZE or size < 16 * BLOCK_SIZE:
            raise BoardError(f"flash size {size} must be a multiple of {BLOCK_SIZE} and at least 64 KB")
        self.path = Path(path)
        self.size = size

    @property
    def block_count(self) -> int:
        return self.size // BLOCK_SIZE

    def _fs(self, mount: bool) -> LittleFS:
        return LittleFS(
            block_size=BLOCK_SIZE,
            block_count=self.block_count,
            read_size=32,
            prog_size=32,
            lookahead_size=32,
            name_max=255,
            mount=mount,
        )

    def create(self) -> None:
        """Format a new image (erased flash reads 0xFF) holding the factory boot.py."""
        fs = self._fs(mount=False)
        fs.context.buffer[:] = b"\xff" * self.size
        fs.format()
        fs.mount()
        with fs.open("boot.py", "wb") as f:
            f.write(FACTORY_BOOT_PY)
        self._save(fs)

    def _load(self) -> LittleFS:
        if not self.path.is_file():
            raise BoardError(f"flash image {self.path} does not exist; start the board once to create it")
        data = self.path.read_bytes()
        if len(data) != self.size:
            raise BoardError(
                f"flash image {self.path} is {len(data)} bytes, expected {self.size}: "
                "the image is corrupt or from another board; use --erase to reformat it"
            )
        fs = self._fs(mount=False)
        fs.context.buffer[:] = data
        try:
            fs.mount()
        except LittleFSError as exc:
            raise BoardError(
                f"flash image {self.path} does not hold a valid LittleFS filesystem ({exc}); "
                "it was not reformatted: use --erase (or VirtualBoard(erase=True)) to start over"
            ) from None
        return fs

    def _save(self, fs: LittleFS) -> None:
        # Write beside and rename, so a crash here never leaves half an image behind.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(bytes(fs.context.buffer))
        os.replace(tmp, self.path)

    def check(self) -> None:
        """Raise BoardError unless the image mounts."""
        self._load().unmount()

    def read_file(self, path: str) -> bytes:
        fs = self._load()
        try:
            with fs.open(_lfs_path(path), "rb") as f:
                return f.read()
        except (LittleFSError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{path}: not on the board's flash ({exc})") from None

    def write_file(self, path: str, data: bytes) -> None:
        fs = self._load()
        target = _lfs_path(path)
        parent = target.rsplit("/", 1)[0] if "/" in target else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(target, "wb") as f:
            f.write(data)
        self._save(fs)

    def remove(self, path: str) -> None:
        fs = self._load()
        try:
            fs.remove(_lfs_path(path))
        except (LittleFSError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{path}: not on the board's flash ({exc})") from None
        self._save(fs)

    def listdir(self, path: str = "/") -> list[str]:
        fs = self._load()
        try:
            return sorted(fs.listdir(_lfs_path(path) or "/"))
        except (LittleFSError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{path}: no such directory on the board's flash ({exc})") from None

    def walk(self) -> dict[str, bytes]:
        """Every file on the flash, by absolute path."""
        fs = self._load()
        files: dict[str, bytes] = {}
        for root, _dirs, names in fs.walk("/"):
            for name in names:
                full = (root.rstrip("/") + "/" + name) if root != "/" else "/" + name
                with fs.open(full.lstrip("/"), "rb") as f:
                    files[full] = f.read()
        return files


def _lfs_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BoardError(f"{path}: '..' is not allowed in a flash path")
    return "/".join(parts)
