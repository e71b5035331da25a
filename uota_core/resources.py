"""Locate the device tree (MicroPython code that runs on the board)."""

from __future__ import annotations

from pathlib import Path


def device_dir() -> Path:
    """The `device/` tree: `uota_core/_device` in a wheel, `device/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_device", here.parent / "device"):
        if (candidate / "sim" / "firmware.py").is_file():
            return candidate
    raise FileNotFoundError(
        "uota device tree not found: reinstall pytest-uota (the wheel ships it as uota_core/_device)"
    )
