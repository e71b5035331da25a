# Boot guard: counts consecutive unclean boots in /ota_boot.json; after MAX_UNCLEAN the
# previous app set is restored from /ota_prev/ (docs/protocol.md "Boot guard").
# uota.fs is imported per call: the boot guard stays resident, fs is unloaded after boot

MAX_UNCLEAN = 3
_clean = False
_counted = False  # boot() has counted this boot
_stopped = False  # a host stopped or reset this boot (see host_stopped_boot)
app_crashed = False  # the app raised during this boot (set by uota.runtime)
healthy_requested = False  # set by uota.mark_healthy() from any thread


def unclean_count():
    from uota import fs

    s = fs.read_json(fs.full(fs.BOOT_STATE), {})
    n = s.get("unclean", 0) if isinstance(s, dict) else 0
    return n if isinstance(n, int) else 0


def settle():
    """boot.py, at every boot (raw REPL too): finish a commit a reset cut short, or roll a
    set that failed MAX_UNCLEAN times back, so every tool sees a whole file set. Returns
    'committed', 'rolled_back' or 'ok'."""
    from uota import fs

    # Write before reading anything: a power cut inside a move from one directory to another
    # (a commit's) leaves it half done, and until the first write of a mount fixes that,
    # LittleFS also hides the next entry of the old directory: the journal itself, or a
    # staged file the replay would take for moved in, then delete with the stage. Removing a
    # file that isn't there is such a write.
    fs.remove(fs.full(fs.JOURNAL) + ".fix")
    # uota.commit is loaded only when there is work for it: most boots have none
    result = "ok"
    if fs.exists(fs.full(fs.JOURNAL)):
        from uota import commit

        commit.apply()
        # The set is new, so its unclean-boot count starts again (as after end_ota).
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
        result = "committed"
    n = unclean_count()
    if n >= MAX_UNCLEAN and fs.exists(fs.full(fs.PREV) + "/.manifest.txt"):
        from uota import commit

        print("uota: %d unclean boots, restoring the previous app set" % n)
        commit.rollback()
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
        result = "rolled_back"
    if fs.exists(fs.full(fs.PREV_OLD)):  # the backup the last commit replaced
        from uota import tree

        tree.rmtree(fs.full(fs.PREV_OLD))
    return result


def count():
    """The launcher (main.py), before the app starts: this boot counts as unclean until the
    app proves healthy. Only boots that start the app count: a raw-REPL tool's soft resets
    (which skip main.py) never add up to a rollback."""
    global _clean, _counted
    from uota import fs

    _clean = False
    fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": unclean_count() + 1})
    _counted = True


def is_clean():
    return _clean


def mark_clean():
    global _clean
    if _clean:
        return
    _clean = True
    from uota import fs

    fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": 0})
    print("uota: boot marked healthy\n", end="")  # one write: the app thread prints too
    try:
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()
    except Exception:  # no esp32 module, or firmware without rollback support
        pass


def host_stopped_boot():
    """A host stopped this boot (Ctrl-C for a serial session, after which the board soft-
    resets) or asked for a reset. That says nothing about the app, so the boot doesn't
    count as unclean, however often it happens: otherwise three quick serial commands, or
    three `reset`s from anyone with the password, would roll a good app back to an older
    set. A boot in which the app already crashed still counts."""
    global _stopped
    if _clean or _stopped or not _counted or app_crashed:
        return
    _stopped = True
    from uota import fs

    n = unclean_count()
    if n > 0:
        fs.write_json(fs.full(fs.BOOT_STATE), {"unclean": n - 1})
