"""Device code that misbehaves must not break the virtual board's firmware."""

from __future__ import annotations

import pytest

from serial_helpers import enter_raw, open_port, raw_exec, read_until
from uota_core.sim import VirtualBoard

pytestmark = pytest.mark.timeout(120)


def test_heap_left_locked_or_over_unlocked_by_user_code(fast_board: VirtualBoard) -> None:
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    assert raw_exec(port, "import micropython\nmicropython.heap_lock()") == (b"", b"")
    assert raw_exec(port, "print([1] * 3)") == (b"[1, 1, 1]\r\n", b"")
    port.write(b"import micropython\nmicropython.heap_lock()\nraise ValueError('locked')\x04")
    assert b"Error" in read_until(port, b"\x04>")  # a ValueError, or a MemoryError making it
    assert raw_exec(port, "print([0] * 3)") == (b"[0, 0, 0]\r\n", b"")
    port.write(b"import micropython\nmicropython.heap_unlock()\nmicropython.heap_unlock()\x04")
    read_until(port, b"\x04>")
    assert raw_exec(port, "print([2] * 3)") == (b"[2, 2, 2]\r\n", b"")


def test_two_threads_using_the_filesystem_at_once(fast_board: VirtualBoard) -> None:
    """The ESP32 port's GIL serialises LittleFS; the unix port has none, so the board must."""
    port = open_port(fast_board)
    enter_raw(fast_board, port)
    out, err = raw_exec(
        port,
        "import _thread, os, time\n"
        "done = []\n"
        "def churn(tag):\n"
        "    for i in range(150):\n"
        "        name = '/%s%d.txt' % (tag, i % 5)\n"
        "        with open(name, 'w') as f:\n"
        "            f.write(tag * 200)\n"
        "        with open(name) as f:\n"
        "            assert f.read() == tag * 200\n"
        "        os.listdir('/')\n"
        "    done.append(tag)\n"
        "_thread.start_new_thread(churn, ('a',))\n"
        "churn('b')\n"
        "t = time.ticks_ms()\n"
        "while len(done) < 2 and time.ticks_diff(time.ticks_ms(), t) < 20000:\n"
        "    time.sleep_ms(10)\n"
        "print(sorted(done), sorted(os.listdir('/')))\n",
        timeout=60,
    )
    assert err == b"", err
    assert out.startswith(b"['a', 'b']"), out
    fast_board.power_cut()
    files = fast_board.listdir("/")
    for tag in "ab":
        for i in range(5):
            assert fast_board.read_file(f"/{tag}{i}.txt") == tag.encode() * 200, files
