# The example firmware: a LED, a button, a temperature sensor on an ADC pin, and a counter
# kept in flash. Each feature is reachable from the host through a RemoteIO handler, which
# is what the tests in tests/ call.
import json
import time

from machine import ADC, Pin

import uota
import uota.remoteio as remoteio

LED_PIN = 2
BUTTON_PIN = 4
SENSOR_PIN = 34
COUNTER_FILE = "/data/counter.json"

led = Pin(LED_PIN, Pin.OUT)
button = Pin(BUTTON_PIN, Pin.IN)
sensor = ADC(Pin(SENSOR_PIN))


@remoteio.on("set_led")
def set_led(state=False):
    led.value(1 if state else 0)
    print("led on" if state else "led off")
    return "ok"


@remoteio.on("led")
def led_state():
    return led.value()


@remoteio.on("button")
def button_state():
    return button.value()


def celsius(raw):
    # a 10 mV/degC sensor on a 3.3 V, 12-bit ADC
    return round(raw * 3300 / 4095 / 10, 1)


@remoteio.on("temperature")
def temperature():
    value = celsius(sensor.read())
    print("temperature", value)
    return value


def _load_count():
    try:
        with open(COUNTER_FILE) as f:
            return json.load(f)["count"]
    except (OSError, ValueError, KeyError):
        return 0


@remoteio.on("count")
def count(add=0):
    value = _load_count() + add
    if add:
        try:
            import os

            os.mkdir("/data")
        except OSError:
            pass
        with open(COUNTER_FILE, "w") as f:
            json.dump({"count": value}, f)
    return value


@remoteio.on("divide")
def divide(a, b):
    return a / b


def run():
    print("app started")
    uota.mark_healthy()  # tell the boot guard this version works
    while True:
        time.sleep(1)
