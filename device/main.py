# uota's launcher: the OTA server, and your app (app/main.py) in its own thread, so an app
# that crashes never takes `uota fast` down. Installed by `uota bootstrap`, never pushed:
# keep your entry point in app/main.py. Ctrl-C on the serial port stops it (REPL).
try:
    import uota.runtime
except Exception as e:  # a broken stack: say so and leave the REPL to `uota bootstrap`
    import sys

    print("uota: OTA stack unavailable:")
    sys.print_exception(e)
else:
    uota.runtime.main()
