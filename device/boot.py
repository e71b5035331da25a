# uota: the boot guard's bookkeeping (finish an interrupted update, roll back a crashing one),
# then return at once. MicroPython then runs main.py (uota's launcher: the OTA server and your
# app) in the normal REPL mode, and skips it when a tool (mpremote, Thonny, rshell) soft-resets
# into the raw REPL: those tools get the REPL they asked for.
try:
    from uota import boot_guard

    boot_guard.settle()
    del boot_guard
except Exception as e:  # a broken stack must not stop the board: the REPL stays usable
    import sys

    print("uota: OTA stack unavailable:")
    sys.print_exception(e)
