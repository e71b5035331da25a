# `machine` for the virtual board: an ESP32's API over the unix port.
# Pin levels and ADC readings live in gpio.bin (128 LE int32: slot n = pin n
# level, slot 64+n = ADC raw of pin n) so the host can drive inputs and watch
# outputs while the board runs.
import os
import struct
import time
import machine as _m
import simio
import simgil

# Keep what the unix port has (Signal, PinBase, idle, time_pulse_us, ...).
for _k in dir(_m):
    if _k[:2] != "__" and _k[:3] != "mem":
        globals()[_k] = getattr(_m, _k)

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
_cause = int(os.getenv("UOTA_SIM_RESET_CAUSE") or 1)
_uid = bytes(int((os.getenv("UOTA_SIM_UID") or "000000000000")[i:i + 2], 16) for i in range(0, 12, 2))
_freq = [160000000]

# Opened before the flash is mounted at / (host paths vanish then).
_gpio = open(os.getenv("UOTA_SIM_GPIO"), "r+b")
_lock = simgil.C  # C code on a board: no thread switch inside
_b4 = bytearray(4)


def _get(slot):
    with _lock:
        _gpio.seek(slot * 4)
        _gpio.readinto(_b4)
        return struct.unpack("<i", _b4)[0]


def _set(slot, v):
    with _lock:
        _gpio.seek(slot * 4)
        _gpio.write(struct.pack("<i", v))


def reset():
    simio.reset(b"reset hard")


def soft_reset():
    # As on ESP32: a SystemExit that pyexec turns into a soft reboot
    raise SystemExit


def reset_cause():
    return _cause


def unique_id():
    return _uid


def freq(hz=None):
    if hz is None:
        return _freq[0]
    _freq[0] = hz


def lightsleep(ms=None):
    simgil.blocking(time.sleep_ms, ms if ms is not None else 1 << 30)


def idle():
    simgil.blocking(_m.idle)


def deepsleep(ms=None):
    # Wakes through a reset; the contract only knows hard resets.
    if ms:
        simgil.blocking(time.sleep_ms, ms)
    reset()


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin(_m.PinBase):
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        if not 0 <= id < 64:
            raise ValueError("invalid pin")
        self._id = id
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, **kw):
        if value is not None:
            _set(self._id, 1 if value else 0)
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull

    def value(self, v=None):
        if v is None:
            return 1 if _get(self._id) else 0
        _set(self._id, 1 if v else 0)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        _set(self._id, 1)

    def off(self):
        _set(self._id, 0)

    def __repr__(self):
        return "Pin(%d)" % self._id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 0
    WIDTH_10BIT = 1
    WIDTH_11BIT = 2
    WIDTH_12BIT = 3

    def __init__(self, pin, atten=0):
        self._id = pin if isinstance(pin, int) else pin._id
        self._atten = atten
        self._width = 3

    def _raw(self):
        return min(max(_get(64 + self._id), 0), 4095)

    def read(self):
        return self._raw() >> (3 - self._width)

    def read_u16(self):
        return self._raw() * 65535 // 4095

    def read_uv(self):
        # full scale per attenuation, as the ESP32 docs give it
        return self._raw() * (950000, 1250000, 1750000, 2450000)[self._atten] // 4095

    def atten(self, a):
        self._atten = a

    def width(self, w):
        self._width = w

    def __repr__(self):
        return "ADC(Pin(%d))" % self._id


class WDT:
    # Accepted and fed; the virtual board does not enforce it.
    def __init__(self, id=0, timeout=5000):
        self._t = timeout

    def feed(self):
        pass


__name__ = "machine"
del _k, __file__
