# uota on the device. Apps import this for mark_healthy(); it stays tiny because it is
# imported at every boot and its bytecode stays resident.


def mark_healthy():
    """Tell the boot guard this boot is good (resets the unclean-boot counter)."""
    from uota import boot_guard

    # only a request: the OTA event loop does the flash write, so the stack never writes
    # flash from the app's thread
    boot_guard.healthy_requested = True
