# `micropython` as on a board, except kbd_intr: the UART interrupt char is
# the supervisor's business (it turns Ctrl-C into SIGINT). The VM's own
# handler stays at Ctrl-C; disabling it in the unix port would make SIGINT
# kill the process.
import micropython as _m
import simio

for _k in dir(_m):
    if _k[:2] != "__":
        globals()[_k] = getattr(_m, _k)


def kbd_intr(c):
    simio.ctl(b"intr %d" % c)


__name__ = "micropython"
del _k, __file__
