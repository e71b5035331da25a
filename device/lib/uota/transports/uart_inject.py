# Module injection for the serial transport (uart.py) on a board without the uota lib: the
# host runs this source in the raw REPL next to uart.py's, then sends each session module
# over the framed link; it is imported from a RAM filesystem, one module at a time.
import sys


class RamFS:
    # a read-only VFS holding one module source at a time, for importing injected modules
    def __init__(self):
        self.files = {}

    def mount(self, ro, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, p):
        p = p.strip("/")
        if p in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[p]), 0, 0, 0)
        if p in ("", "uota", "uota/transports"):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def open(self, p, mode):
        import io

        try:
            return io.BytesIO(self.files[p.strip("/")])
        except KeyError:
            raise OSError(2)

    def ilistdir(self, p):
        return iter(())


def inject(s, arg):
    """Load the modules the host sends ("mod <path> <size>" + code, .mpy or .py; the first
    header's argument is `arg`), until "run <mode>"; returns the mode."""
    import gc

    ram = None
    while True:
        path, n = arg.split(" ")
        n = int(n)
        src = b""
        while len(src) < n:
            src += s.recv(n - len(src))
        if ram is None:
            try:
                import vfs
            except ImportError:
                import os as vfs
            ram = RamFS()
            vfs.mount(ram, "/__uota")
            sys.path.insert(0, "/__uota")
        ram.files = {path: src}
        del src
        gc.collect()
        __import__(path.rsplit(".", 1)[0].replace("/", "."))
        ram.files = {}  # modules compiled one at a time: only one source is ever in RAM
        gc.collect()
        s.write(b"ok\n")
        cmd, _, arg = s.line().partition(" ")
        if cmd == "run":
            return arg
