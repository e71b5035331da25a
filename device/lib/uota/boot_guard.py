# Boot guard: counts consecutive unclean boots in /ota_boot.json; after MAX_UNCLEAN the
# previous app set is restored from /ota_prev/ (docs/protocol.md "Boot guard").
from uota import fs

MAX_UNCLEAN = 3
_clean = False


def _state_path():
    return fs.full(fs.BOOT_STATE)


def unclean_count():
    s = fs.read_json(_state_path(), {})
    n = s.get("unclean", 0) if isinstance(s, dict) else 0
    return n if isinstance(n, int) else 0


def boot():
    """Run first at every boot. Returns 'rolled_back', 'committed' or 'ok'."""
    global _clean
    from uota import commit

    result = "ok"
    if commit.apply():
        result = "committed"
    n = unclean_count()
    if n >= MAX_UNCLEAN and commit.can_rollback():
        print("uota: %d unclean boots, restoring the previous app set" % n)
        commit.rollback()
        n = 0
        result = "rolled_back"
    _clean = False
    fs.write_json(_state_path(), {"unclean": n + 1})
    return result


def is_clean():
    return _clean


def mark_clean():
    global _clean
    if _clean:
        return
    _clean = True
    fs.write_json(_state_path(), {"unclean": 0})
    try:
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()
    except Exception:  # no esp32 module, or firmware without rollback support
        pass
