"""pytest-uota: fixtures and options for testing MicroPython ESP32 firmware on real or virtual boards."""
