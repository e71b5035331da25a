# uota on the device. Apps import this for mark_healthy(); it stays tiny because it is
# imported at every boot and its bytecode stays resident.


def mark_healthy():
    """Tell the boot guard this boot is good (resets the unclean-boot counter)."""
    from uota import boot_guard

    # only a request: the OTA event loop does the flash write, so the stack never writes
    # flash from the app's thread
    boot_guard.healthy_requested = True


def load(name):
    """Import uota module `name`, waiting out a busy heap: right after boot the app thread
    may be compiling its own modules, and two compilations at once can exceed a 128 KB heap.
    Here rather than in uota.runtime, so a session never has to load the boot-time stack."""
    import gc
    import sys
    import time

    for _ in range(30):
        gc.collect()
        try:
            return __import__(name, None, None, ("_",))
        except MemoryError:
            sys.modules.pop(name, None)
            time.sleep_ms(100)
    return __import__(name, None, None, ("_",))
