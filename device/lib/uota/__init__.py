# uota on the device. Apps import this for mark_healthy(); it stays tiny because it is
# imported at every boot and its bytecode stays resident.


def mark_healthy():
    """Tell the boot guard this boot is good (resets the unclean-boot counter)."""
    from uota import boot_guard

    boot_guard.mark_clean()
