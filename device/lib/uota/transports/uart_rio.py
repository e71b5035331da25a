# RemoteIO calls over the serial transport (uart.py): JSON lines as on TCP port 2019. The
# app's print() output needs nothing here: it reaches the host as bytes between frames.
import json


def run(s):
    import binascii
    import machine
    import sys
    from uota import remoteio

    # USB is physical access (the raw REPL runs anything), so no challenge here
    dev = binascii.hexlify(machine.unique_id()).decode()
    s.write(json.dumps({"hello": {"proto": 2, "id": dev, "auth": False}}).encode() + b"\n")
    rt = sys.modules.get("uota.runtime")
    if rt is None or rt._app["state"] == "starting":
        # this session's Ctrl-C stopped the launcher (main.py) before it started the app, or
        # a raw-REPL soft reset skipped it: start the app here, or no handler would answer
        # (the soft reset at the end boots the board properly)
        from uota.runtime import start_app

        start_app()
    while True:
        try:
            frame = json.loads(s.line())
        except ValueError:
            continue
        if isinstance(frame, dict) and "call" in frame:
            s.write(json.dumps(remoteio._call(frame)).encode() + b"\n")
