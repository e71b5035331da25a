# Which paths an OTA client may touch. Checked on the device because the host can't be
# trusted to check them (docs/protocol.md, "Paths").
MAX_LEN = 128

# Directories that hold the OTA stack, the secrets and runtime data, and their ancestors:
# an entry naming one would turn it into a file (moving the secrets or the stack away).
_HOLDERS = ("lib", "lib/uota", "config", "data")


def check(path):
    """None if `path` is an acceptable relative device path, else the reason."""
    if not path or len(path) > MAX_LEN:
        return "empty or longer than %d bytes" % MAX_LEN
    if path[0] == "/":
        return "absolute"
    for ch in path:
        if ch in "\\;\x7f" or ch < " ":
            return "bad character %r" % ch
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            return "empty, '.' or '..' segment"
    return None


def reserved(path):
    # the OTA stack itself (boot.py, the launcher main.py, lib/uota), its state and the
    # device secrets, or a directory holding them: never written, deleted or restored by OTA
    return (
        path == "boot.py"
        or path == "main.py"
        or path.startswith("lib/uota/")
        or path.startswith("ota_")
        or path == "config/.ota.secrets.json"
        or path in _HOLDERS
    )


def secret(path):
    # never served by `get`: OTA state (incl. the copies in ota_prev/) and anything named
    # like the secrets file or a backup of it
    return path.startswith("ota_") or "secret" in path.lower()


def deletable(path):
    return not reserved(path) and not path.startswith("data/")


def wipeable(path):
    return deletable(path) and not path.startswith("lib/") and not path.startswith("config/")
