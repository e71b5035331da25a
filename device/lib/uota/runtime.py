# What the launcher (/main.py) runs once boot.py has settled the file set: the app
# (app/main.py) in its own thread, then the OTA event loop in the main thread, which never
# returns (Ctrl-C on the serial port stops it so the REPL comes up, as on any MicroPython
# board). MicroPython skips main.py after a soft reset into the raw REPL, so mpremote & co.
# find a board that is not running the loop.
import sys
import time
import gc
import select
import _thread
from uota import boot_guard, remoteio, load

CRASH_GRACE_MS = 2000  # lets a host finish talking to the board before the guard resets it

_app = {"state": "starting", "at": 0}


def _print_exception(e):
    # through print(), so RemoteIO listeners see the traceback too; returned for the record
    import io

    buf = io.StringIO()
    sys.print_exception(e, buf)
    text = buf.getvalue()
    print(text, end="")
    return text


APP_ENTRY = "app/main"  # the user's entry point (app/main.py or .mpy), imported as app.main


def start_app():
    """The app (app/main.py) in its own thread."""
    _app["state"] = "running"  # before the thread runs: a second start_app() must see it
    _thread.start_new_thread(_run_app, ())


def _has_entry():
    import os

    for ext in (".py", ".mpy"):
        try:
            os.stat(APP_ENTRY + ext)
            return True
        except OSError:
            pass
    return False


def _run_app():
    try:
        if _has_entry():
            __import__(APP_ENTRY.replace("/", "."))  # runs the app
        else:  # a board fresh from `uota bootstrap`: nothing to run, nothing crashed
            print("uota: no app yet (%s.py): push one with `uota fast`\n" % APP_ENTRY, end="")
        _app["state"] = "returned"
    except SystemExit:
        _app["state"] = "returned"
    except BaseException as e:  # any app failure must leave the OTA loop running
        boot_guard.app_crashed = True  # before anything else: a host reset now can't hide it
        # one write, newline included: the ESP32 port writes print()'s end separately, and
        # the main thread's line could land in between (`...:2018uota: the app crashed:`)
        print("uota: the app crashed:\n", end="")
        _app["trace"] = _print_exception(e)  # for the host's push (uota.health)
        _app["at"] = time.ticks_ms()
        _app["state"] = "crashed"


# modules a session loads on demand; dropped afterwards so the idle stack stays small
_SESSION_MODULES = ("session", "staging", "pending", "admin", "channel", "auth", "seal", "paths", "commit", "tree", "mlist")


# what a session may load after the app started, in dependency order (uota.throttle: the
# first wrong guess)
_WARM = ("paths", "auth", "channel", "mlist", "tree", "packed", "seal", "session", "commit", "staging",
         "pending", "admin", "throttle", "health")


def _intern_session_names():
    """Load what a session may load, once, before the app starts, and drop it again: the
    names its code uses stay interned (as after a first session). A module loaded later
    that interns new names can need a new qstr pool, twice the size of the last (640
    names: about 4 KB on an ESP32, 7.7 KB on the 64-bit virtual board) in one block: a
    heap an app has fragmented (printing flat out) often has none, and the session failed
    with MemoryError. Costs 18 ms and 9.5 KB of heap at boot (.mpy stack, virtual board)."""
    for name in _WARM:
        for _ in range(2):
            try:
                __import__("uota." + name)
                break
            except Exception:  # never stop the boot: a source stack compiling (MemoryError)
                unload(_WARM)  # retries with room; anything else shows when a session loads it
                gc.collect()
    unload(_WARM)
    gc.collect()


def unload(names):
    """Forget on-demand modules so the GC can free their bytecode. `from uota import x`
    also binds x on the package, so that reference has to go as well."""
    import uota

    for name in names:
        sys.modules.pop("uota." + name, None)
        try:
            delattr(uota, name)
        except (AttributeError, KeyError):  # MicroPython raises KeyError here
            pass


def _serve(stream, t, transports):
    """Serve a waiting OTA connection's input: until it needs more (parked in the
    transport's lobby), or, once it authenticated, to the end of its session."""
    reset = False
    started = time.ticks_ms()
    stream.turn = 1  # one read per round: a chatty stranger can't hold the loop
    try:
        if stream.session is None:
            stream.session = load("uota.session").Session(stream)
        reset = stream.session.run()
    except t.Later:
        if not stream.expired():
            return
    except Exception as e:  # a session bug or a full heap must not take the OTA server down
        print("uota: OTA session failed:")
        _print_exception(e)
    if stream.until is None:
        # an authenticated session had the loop to itself: its time doesn't count against
        # those who waited meanwhile (another of the owner's tools, say)
        took = time.ticks_diff(time.ticks_ms(), started)
        for other in t.waiting:
            other.paused(took)
    if reset:
        # stop listening before the host sees the connection close: anything that
        # connects afterwards reaches the next boot, not this dying one
        for other in transports:
            other.close()
    t.drop(stream)
    if not t.waiting:
        unload(_SESSION_MODULES)
        gc.collect()
    if reset:
        import machine
        import micropython

        micropython.kbd_intr(-1)  # a serial host's Ctrl-C now must not cancel the reset
        time.sleep_ms(20)
        machine.reset()


def _guard_tick(healthy_ms, started):
    if boot_guard.is_clean():
        return
    state = _app["state"]
    if (boot_guard.healthy_requested or state == "returned"
            or (state == "running" and time.ticks_diff(time.ticks_ms(), started) >= healthy_ms)):
        boot_guard.mark_clean()
    elif state == "crashed" and not _app.get("recorded"):
        # on flash before the reset, so a host that asks after it (uota.health) still gets
        # the traceback; written here, loading no module: a serial host's Ctrl-C often
        # lands right now, as a crash at import is early in a boot
        _app["recorded"] = True
        from uota import fs

        rec = fs.version_info()
        rec["trace"] = (_app.get("trace") or "")[-1500:]
        fs.write_json(fs.full(fs.CRASH), rec)
    elif state == "crashed" and time.ticks_diff(time.ticks_ms(), _app["at"]) >= CRASH_GRACE_MS:
        from uota import commit

        if commit.can_rollback():
            import machine

            print("uota: unclean boot %d; resetting" % boot_guard.unclean_count())
            machine.reset()
        _app["state"] = "crashed-kept"  # nothing to roll back to: stay up for a fix


_poll = {"gen": -1, "p": None}


def _idle(transports, ms):
    # sleep until a socket has something for us (or ms pass): a RemoteIO call or an OTA
    # connection is served at once instead of on the next tick
    gen = remoteio.generation + sum(t.generation for t in transports)
    if gen != _poll["gen"]:
        p = select.poll()
        for t in transports:
            for s in t.sockets():
                p.register(s, select.POLLIN)
        for s in remoteio.sockets():
            p.register(s, select.POLLIN)
        _poll["gen"], _poll["p"] = gen, p
    _poll["p"].poll(ms)


def _transports(cfg):
    found = []
    for name in cfg.get("transports") or ["wifi_tcp"]:
        if name == "wifi_tcp":
            from uota.transports.wifi_tcp import WifiTcp

            found.append(WifiTcp(cfg))
        else:
            print("uota: transport %s is not available here" % name)
    return found


def _tick(transports, healthy_ms, started):
    """One round of the event loop; True if there is more to do at once."""
    busy = False
    for t in transports:
        if not t.poll():
            continue
        for stream in t.accept_ota():
            _serve(stream, t, transports)
            busy = True
        if remoteio.poll(t):
            busy = True
    _guard_tick(healthy_ms, started)
    return busy


def main():
    from uota import fs

    started = time.ticks_ms()
    boot_guard.count()  # boot.py already settled the file set
    cfg = fs.read_json(fs.full(fs.CONFIG), {})
    if not isinstance(cfg, dict):
        cfg = {}
    remoteio.version = fs.version_info()["version"]
    sec = fs.read_json(fs.full(fs.SECRETS), {})
    if isinstance(sec, dict) and sec.get("otaKey"):
        remoteio.password, remoteio.salt, remoteio.iters = sec["otaKey"], sec.get("otaSalt", ""), sec.get("otaIter", 0)
    elif isinstance(sec, dict):
        remoteio.password = sec.get("otaPassword") or ""  # an older stack's key: no client gets in
    del sec
    del fs
    unload(("commit", "tree", "mlist", "paths", "health"))  # boot-time only
    gc.collect()
    _intern_session_names()
    healthy_ms = int(cfg.get("healthyAfter", 10) * 1000)
    # import everything the loop needs before the app thread starts importing too
    transports = _transports(cfg)
    del cfg
    gc.collect()
    remoteio.install()
    start_app()
    try:
        while True:
            try:
                busy = _tick(transports, healthy_ms, started)
            except Exception as e:
                # A full heap (an app printing flat out) or a bug in one round must not take
                # the OTA server down; KeyboardInterrupt (serial session entry) still ends it.
                gc.collect()
                print("uota: event loop recovered from %r" % (e,))
                busy = False
            if not busy:
                _idle(transports, 5)
    finally:
        remoteio.close_all()
        for t in transports:
            t.close()
        remoteio.uninstall()
