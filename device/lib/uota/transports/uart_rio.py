# RemoteIO calls over the serial transport (uart.py): JSON lines as on TCP port 2019. The
# app's print() output needs nothing here: it reaches the host as bytes between frames.
import json


def run(s):
    import binascii
    import machine
    from uota import remoteio

    # USB is physical access (the raw REPL runs anything), so no challenge here
    dev = binascii.hexlify(machine.unique_id()).decode()
    s.write(json.dumps({"hello": {"proto": 2, "id": dev, "auth": False}}).encode() + b"\n")
    while True:
        try:
            frame = json.loads(s.line())
        except ValueError:
            continue
        if isinstance(frame, dict) and "call" in frame:
            s.write(json.dumps(remoteio._call(frame)).encode() + b"\n")
