# uota: the boot guard's bookkeeping (finish an interrupted update, roll back a crashing one),
# then return at once. MicroPython then runs main.py (uota's launcher: the OTA server and your
# app) in the normal REPL mode, and skips it when a tool (mpremote, Thonny, rshell) soft-resets
# into the raw REPL: those tools get the REPL they asked for.
try:
    from uota import boot_guard

    _r = boot_guard.settle()
    if _r != "ok":
        print("uota: boot guard: %s" % _r)
    if _r == "committed":
        import machine

        # finishing a commit leaves the heap fragmented: start over on a fresh one (SystemExit)
        machine.soft_reset()
    del boot_guard, _r
except Exception as e:  # a broken stack must not stop the board: the REPL stays usable
    import sys

    print("uota: OTA stack unavailable:")
    sys.print_exception(e)
