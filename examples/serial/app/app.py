# A starter app for a board on a USB cable: no WiFi needed. uota pushes code and calls these
# handlers over the serial port.
import time

import uota
import uota.remoteio as remoteio

_readings = []


@remoteio.on("record")
def record(value):
    _readings.append(value)
    print("recorded", value)
    return len(_readings)


@remoteio.on("average")
def average():
    return sum(_readings) / len(_readings) if _readings else None


def run():
    print("app started")
    uota.mark_healthy()
    while True:
        time.sleep(1)
