# `sys` as on a board: stdout/stderr are the UART with cooked newlines
# (.buffer stays binary-clean), platform is 'esp32'. Everything else is the
# VM's own sys (path, modules, exit, stdin, ...).
import sys as _sys
import simio

for _k in dir(_sys):
    if _k[:2] != "__":
        globals()[_k] = getattr(_sys, _k)
stdout = stderr = simio.con
print_exception = simio.print_exception
platform = "esp32"

__name__ = "sys"
del _k, __file__
