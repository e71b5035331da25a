"""A virtual board's defaults, apart from the supervisor so `uota sim run --help` can show
them without loading the VM, LittleFS and the pty code."""

DEFAULT_BAUD = 115200
DEFAULT_HEAP = "128K"
