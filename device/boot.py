# uota: boot guard, the app (/main.py) in its own thread, then the OTA event loop.
# If the OTA stack itself is broken, boot.py returns and MicroPython runs main.py as usual,
# so the board still boots and `uota bootstrap` can repair it over USB.
try:
    import uota.runtime
except Exception as e:
    import sys

    print("uota: OTA stack unavailable:")
    sys.print_exception(e)
else:
    uota.runtime.main()
