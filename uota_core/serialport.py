"""Finding and opening a board's USB serial port, with one clear error per failure."""

from __future__ import annotations

import os

import serial
from serial.tools import list_ports

from uota_core.errors import UotaError

# USB-UART bridges found on ESP32 boards, and Espressif's native USB (any product id)
ESP_USB_IDS: dict[tuple[int, int | None], str] = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6014): "FTDI FT232H",
    (0x0403, 0x6015): "FTDI FT-X",
    (0x303A, None): "Espressif USB",
}


class SerialPortError(UotaError):
    """No usable serial port: missing, busy, ambiguous or not detected."""


def esp_bridge(vid: int | None, pid: int | None) -> str | None:
    """The ESP32 USB chip these USB ids belong to (e.g. "CP210x"), or None."""
    if vid is None:
        return None
    return ESP_USB_IDS.get((vid, pid)) or ESP_USB_IDS.get((vid, None))


def candidates() -> list[tuple[str, str]]:
    """(device, description) of every connected port whose USB ids look like an ESP32 board."""
    found = []
    for p in list_ports.comports():
        chip = esp_bridge(p.vid, p.pid)
        if chip:
            found.append((p.device, f"{chip} {p.vid:04x}:{p.pid:04x} {p.description or ''}".strip()))
    return sorted(found)


def detect() -> str:
    """The one ESP32-looking port, or an error that lists what there is and says what to do."""
    found = candidates()
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise SerialPortError("no ESP32 USB serial port found (looked for CP210x, CH340/CH9102, FTDI and "
                              "Espressif USB ids): plug the board in, or pass --port /dev/ttyUSB0 "
                              "(or set serialPort in config/ota.json)")
    listing = "; ".join(f"{dev} ({desc})" for dev, desc in found)
    raise SerialPortError(f"several ESP32 serial ports found: {listing}: choose one with --port "
                          "(or set serialPort in config/ota.json)")


def open_port(port: str, baud: int = 115200) -> serial.Serial:
    """Open `port` for our use only; a missing or busy port is a SerialPortError naming it."""
    if not os.path.exists(port) and not port.upper().startswith("COM"):
        others = ", ".join(dev for dev, _ in candidates()) or "none detected"
        raise SerialPortError(f"serial port {port} does not exist: check the cable and --port "
                              f"(ESP32 ports present: {others})")
    try:
        # exclusive: a second program on the same port would steal bytes from the protocol
        return serial.Serial(port, baud, timeout=0.05, exclusive=True)
    except (serial.SerialException, OSError) as e:
        text = str(e)
        if "lock" in text or "busy" in text.lower() or getattr(e, "errno", None) in (11, 16):
            raise SerialPortError(f"serial port {port} is busy: another program holds it (a serial monitor, "
                                  "mpremote, another uota?): close it and retry") from None
        if "ermission" in text:
            raise SerialPortError(f"no permission to open {port}: add yourself to the dialout group "
                                  "(sudo usermod -aG dialout $USER, then log in again)") from None
        raise SerialPortError(f"cannot open serial port {port}: {text}: check the cable and --port") from None
