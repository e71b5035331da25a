"""Compressed file bodies (`zfile`): the host packs what shrinks, the device inflates it
while staging, and a hostile body can neither inflate without bound nor desync the stream."""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import zlib
from pathlib import Path

import pytest

from fake_device import REPO, FakeDevice, device, project  # noqa: F401 (fixtures)
from uota_core.config import load_config
from uota_core.link import LinkClosed
from uota_core.push import pack, push
from uota_core.session import Session

pytestmark = pytest.mark.timeout(60)

# real Python source, as an app push carries; sent as big.txt, since a push refuses a .py
# that doesn't compile for MicroPython (CPython's inspect.py, cut mid-line)
SOURCE = inspect.getsource(inspect).encode()


def deflated(data: bytes, wbits: int = 12) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    return packer.compress(data) + packer.flush()


def test_source_goes_packed_binary_goes_plain_and_both_arrive_intact(device: FakeDevice, project: Path) -> None:
    text, blob = SOURCE[:50 * 1024], os.urandom(8192)
    (project / "app" / "big.txt").write_bytes(text)
    (project / "app" / "blob.bin").write_bytes(blob)
    cfg = load_config(project)
    with device.session() as s:
        info = s.open()
        assert info is not None and info.deflate == 12
        result = push(s, cfg, "fast", compress=True)
    assert result.committed
    assert (device.root / "app" / "big.txt").read_bytes() == text
    assert (device.root / "app" / "blob.bin").read_bytes() == blob
    body = pack(text, 12)
    assert body is not None and len(body) < len(text) / 3  # source shrinks ~4x in a 4 KB window
    assert pack(blob, 12) is None  # random bytes don't shrink: sent plain
    small = sum(p.stat().st_size for p in (project / "app").iterdir() if p.name not in ("big.txt", "blob.bin"))
    small += (project / "config" / "ota.json").stat().st_size  # app/main.py is counted with app/
    assert result.wire_bytes == len(body) + len(blob) + small  # the small files went plain
    assert result.bytes == len(text) + len(blob) + small


def test_over_tcp_files_go_plain_unless_asked(device: FakeDevice, project: Path) -> None:
    # WiFi moves bytes faster than an ESP32 inflates them: compression is for slow links
    (project / "app" / "big.txt").write_bytes(SOURCE[:20000])
    with device.session() as s:
        s.open()
        assert not s.link.slow
        result = push(s, load_config(project), "fast")
    assert result.committed and result.wire_bytes == result.bytes
    assert (device.root / "app" / "big.txt").read_bytes() == SOURCE[:20000]


def test_a_256k_source_file_inflates_into_a_128k_heap(device: FakeDevice, project: Path) -> None:
    big = (SOURCE * (256 * 1024 // len(SOURCE) + 1))[: 256 * 1024]
    (project / "app" / "big.txt").write_bytes(big)
    with device.session() as s:
        s.open()
        result = push(s, load_config(project), "fast", compress=True)
    assert result.committed and result.wire_bytes < result.bytes / 3
    assert hashlib.sha256((device.root / "app" / "big.txt").read_bytes()).digest() == hashlib.sha256(big).digest()


def staged_session(device: FakeDevice, path: str, data: bytes) -> Session:
    """A session with an accepted manifest that expects `path` with `data`'s hash."""
    s = device.session()
    s.open()
    s.start_ota()
    s.send_manifest({path: hashlib.sha256(data).hexdigest()}, "2.0")
    return s


def send_zfile(s: Session, path: str, data: bytes, body: bytes, size: int | None = None) -> str:
    size = len(data) if size is None else size
    s.link.write(f"zfile {path};{size};{hashlib.sha256(data).hexdigest()};{len(body)}\n".encode() + body)
    return s._reply(timeout=20)


@pytest.mark.parametrize("case", ["junk", "bomb", "short", "truncated", "wrong window"])
def test_hostile_bodies_are_refused_nothing_is_staged_and_the_stream_stays_in_sync(
        device: FakeDevice, case: str) -> None:
    data = SOURCE[:4096]
    bodies = {
        "junk": os.urandom(700),
        # 1 MB of zeros packs into ~1 KB: it must stop at the declared 4 KB, not fill the flash
        "bomb": deflated(data + bytes(1 << 20)),
        "short": deflated(data[:3000]),
        "truncated": deflated(data)[:-40],
        "wrong window": deflated(SOURCE[:40000], wbits=15),  # distances beyond the device's 4 KB window
    }
    body = bodies[case]
    if case == "wrong window":
        data = SOURCE[:40000]
    with staged_session(device, "app/x.py", data) as s:
        assert send_zfile(s, "app/x.py", data, body) == "sha256_mismatch"
        assert s.ping()  # the body was consumed exactly: the next command parses
        assert s.need() == ["app/x.py"]  # nothing was staged
        assert send_zfile(s, "app/x.py", data, deflated(data)) == "ok"  # a good body after a bad one
        assert s.need() == []
    assert not list((device.root / "ota_stage").rglob("*.part"))


def test_a_refused_zfile_drains_its_body(device: FakeDevice) -> None:
    data = SOURCE[:2048]
    with staged_session(device, "app/x.py", data) as s:
        # a path outside the manifest: refused, and its body must not be read as commands
        reply = send_zfile(s, "app/other.py", data, b"ping\nping\n" * 40)
        assert reply.startswith("error: app/other.py is not in the manifest")
        assert s.ping()
        assert s.need() == ["app/x.py"]  # and none of it became a command or a staged file


def test_a_malformed_zfile_header_closes_the_connection(device: FakeDevice) -> None:
    with staged_session(device, "app/x.py", b"x") as s:
        s.link.write(b"zfile app/x.py;1;abc\n")  # three fields: where its body ends is unknown
        assert s._reply(timeout=10).startswith("error: bad request")
        with pytest.raises(LinkClosed):
            s._reply(timeout=10)


NO_WINDOW = {
    "when made": "def inflater(body):\n    raise MemoryError('no 4 KB block')\n",
    # MicroPython's DeflateIO takes its window on the first read
    "on first read": "class _NoWindow:\n    def readinto(self, b):\n        raise MemoryError('no 4 KB block')\n\n\n"
                     "def inflater(body):\n    return _NoWindow()\n",
}


@pytest.mark.parametrize("when", list(NO_WINDOW))
def test_a_device_without_room_for_the_window_gets_the_files_plain(tmp_path: Path, project: Path, when: str) -> None:
    # the device code as it is, except that the 4 KB window never fits (a fragmented heap)
    lib = tmp_path / "lib"
    shutil.copytree(REPO / "device" / "lib", lib)
    packed = lib / "uota" / "packed.py"
    source = packed.read_text()
    packed.write_text(source[: source.index("def inflater(body):")] + NO_WINDOW[when])
    texts = {f"app/m{i}.txt": SOURCE[i * 3000 : i * 3000 + 3000] for i in range(3)}
    for rel, data in texts.items():
        (project / rel).write_bytes(data)
    root = tmp_path / "flash"
    root.mkdir()
    dev = FakeDevice(root, lib=lib)
    try:
        with dev.session() as s:
            s.open()
            result = push(s, load_config(project), "fast", compress=True)
    finally:
        assert "Traceback" not in dev.close()
    assert result.committed and result.wire_bytes == result.bytes  # all of it went plain, once
    assert result.bytes == sum(p.stat().st_size for p in [project / "config" / "ota.json", *(project / "app").iterdir()])
    for rel, data in texts.items():
        assert (root / rel).read_bytes() == data
