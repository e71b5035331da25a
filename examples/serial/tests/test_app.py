"""Starter tests over USB serial. `pytest` runs them on a virtual board; on a real board:
`pytest --uota-port /dev/ttyUSB0`."""


def test_board_answers(esp32_device):
    assert esp32_device.transport == "serial"
    assert esp32_device.ping()


def test_app_is_installed(esp32_device):
    assert "app.py" in esp32_device.ls("/app")


def test_record_and_average(esp32_device, remoteio):
    assert remoteio.call("record", value=2) >= 1
    remoteio.call("record", value=4)
    esp32_device.expect("recorded 4", timeout=5)
    assert remoteio.call("average") == 3.0


def test_push_only_what_changed(ota_push):
    assert ota_push().bytes == 0
