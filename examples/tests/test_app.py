"""The example firmware's tests. Plain `pytest` runs them on a virtual board, once over WiFi
TCP and once over USB serial; `pytest --uota-port /dev/ttyUSB0 --uota-host 192.168.1.42`
runs them on a real board (the virtual_board tests are then skipped)."""

import pytest

from uota_core.remoteio import RemoteCallError


def test_board_answers(esp32_device):
    assert esp32_device.ping()
    assert esp32_device.version() == "1.0.0"


def test_app_is_installed(esp32_device):
    assert "app.py" in esp32_device.ls("/app")
    assert b'@remoteio.on("set_led")' in esp32_device.get("/app/app.py")


def test_led(esp32_device, remoteio):
    assert remoteio.call("set_led", state=True) == "ok"
    esp32_device.expect("led on", timeout=2)  # the app's print() output
    assert remoteio.call("led") == 1
    assert remoteio.call("set_led", state=False) == "ok"
    esp32_device.expect("led off", timeout=2)
    assert remoteio.call("led") == 0


def test_handler_errors_reach_the_test(remoteio):
    with pytest.raises(RemoteCallError, match="ZeroDivisionError"):
        remoteio.call("divide", a=1, b=0)
    assert remoteio.call("divide", a=6, b=4) == 1.5


def test_push_is_incremental(ota_push):
    # the session already pushed this project: nothing changed, nothing is sent
    result = ota_push()
    assert result.bytes == 0
    assert "app/app.py" in result.skipped


def test_temperature_sensor(virtual_board, remoteio):
    virtual_board.set_adc(34, 1241)  # 1.0 V on the sensor pin
    assert remoteio.call("temperature") == 100.0
    assert "temperature 100.0" in remoteio.output or remoteio.expect("temperature 100.0")


def test_button(virtual_board, remoteio):
    virtual_board.set_pin(4, 1)
    assert remoteio.call("button") == 1
    virtual_board.set_pin(4, 0)
    assert remoteio.call("button") == 0


@pytest.mark.uota(transports=["wifi_tcp"])
def test_counter_survives_a_power_cut(virtual_board, esp32_device, remoteio):
    before = remoteio.call("count")
    assert remoteio.call("count", add=1) == before + 1
    virtual_board.power_cut()
    virtual_board.power_on()
    esp32_device.wait_ready()
    assert remoteio.call("count") == before + 1
