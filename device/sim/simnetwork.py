# `network` for the virtual board: one virtual AP that always accepts, and
# the board's own loopback address (UOTA_SIM_ADDR) as its IPv4 address.
import os
import simmachine

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_addr = os.getenv("UOTA_SIM_ADDR") or "127.0.0.1"
_host = [os.getenv("UOTA_SIM_HOSTNAME") or "esp32"]
_ifs = {}


def hostname(name=None):
    if name is None:
        return _host[0]
    _host[0] = name


class WLAN:
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2
    IF_STA = 0
    IF_AP = 1

    def __new__(cls, interface=STA_IF):
        # one object per interface, as on ESP32
        w = _ifs.get(interface)
        if w is None:
            w = _ifs[interface] = object.__new__(cls)
            w._if = interface
            w._on = False
            w._conn = False
            w._essid = "ESP_%02X%02X%02X" % tuple(simmachine._uid[3:]) if interface else ""
            w._cfg = None
        return w

    def __init__(self, interface=STA_IF):
        pass

    def active(self, on=None):
        if on is None:
            return self._on
        self._on = bool(on)
        if not on:
            self._conn = False

    def connect(self, ssid=None, key=None, **kw):
        if not self._on:
            raise OSError("STA must be active")
        if ssid is not None:
            self._essid = ssid
        self._conn = True

    def disconnect(self):
        self._conn = False

    def isconnected(self):
        return self._on and self._conn and self._if == STA_IF

    def status(self, param=None):
        if param == "rssi":
            return -50
        if param is not None:
            raise ValueError("unknown status param")
        return STAT_GOT_IP if self.isconnected() else STAT_IDLE

    def _ip(self):
        if self._cfg:
            return self._cfg
        if self._if == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        if self.isconnected():
            return (_addr, "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def ifconfig(self, cfg=None):
        if cfg is None:
            return self._ip()
        self._cfg = tuple(cfg)

    def ipconfig(self, key=None, **kw):
        ip = self._ip()
        if key == "addr4":
            return (ip[0], ip[1])
        if key == "gw4":
            return ip[2]
        if key == "dhcp4":
            return self._cfg is None
        if key is not None:
            raise ValueError("unexpected key")

    def config(self, key=None, **kw):
        if key is None:
            for k in kw:
                if k == "essid" or k == "ssid":
                    self._essid = kw[k]
                elif k == "hostname" or k == "dhcp_hostname":
                    _host[0] = kw[k]
            return
        if key == "mac":
            m = bytearray(simmachine._uid)
            m[5] = (m[5] + self._if) & 255
            return bytes(m)
        if key == "hostname" or key == "dhcp_hostname":
            return _host[0]
        if key == "essid" or key == "ssid":
            return self._essid
        if key == "channel":
            return 1
        if key == "txpower":
            return 20
        if key == "pm":
            return 1
        if key == "security":
            return 0
        raise ValueError("unknown config param")

    def scan(self):
        return []


__name__ = "network"
del __file__
