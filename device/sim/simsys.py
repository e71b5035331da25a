# `sys` as on a board: stdout/stderr are the UART with cooked newlines
# (.buffer stays binary-clean), platform is 'esp32', maxsize that of a 32-bit
# port. Everything else is the VM's own sys (path, modules, exit, stdin, ...).
# The ESP32's sys is a C module: rebinding its attributes raises
# AttributeError (only ps1/ps2 may be set), so this is an object of a class
# named `module` that refuses the same, not a Python module.
import sys as _sys
import simio


class module:
    def __setattr__(self, name, value):
        if name in ("ps1", "ps2"):
            object.__setattr__(self, name, value)
            return
        raise AttributeError("'module' object has no attribute '%s'" % name)

    def __delattr__(self, name):
        raise AttributeError("'module' object has no attribute '%s'" % name)

    def __repr__(self):
        return "<module 'sys'>"


for _k in dir(_sys):
    if _k[:2] != "__" and _k != "executable":
        setattr(module, _k, getattr(_sys, _k))
module.stdout = module.stderr = simio.con
module.print_exception = staticmethod(simio.print_exception)
module.platform = "esp32"
module.maxsize = 0x7FFFFFFF
module.__name__ = "sys"
sys = module()
del _k
