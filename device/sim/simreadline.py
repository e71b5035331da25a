# Line editing as in shared/readline/readline.c with the ESP32 options
# (auto-indent, emacs keys, 8 lines of history, tab completion), plus
# py/repl.c's continue-with-input rule.
import builtins
from simio import tx, rx, ctl, cook

hist = []  # newest first
_ai = [0]  # auto-indent state: 1 enabled, 2 just added
G = {}  # the REPL globals, for tab completion (set by simrepl)


def _back(n):
    if n > 0:
        tx(b"\b\b\b\b"[:n] if n <= 4 else "\x1b[%dD" % n)


def _auto_indent(line, cur):
    if not _ai[0] & 1:
        return cur
    n = len(line)
    if n > 1 and line[n - 1] == 10:
        i = n - 1
        while i > 0 and line[i - 1] != 10:
            i -= 1
        j = i
        while j < n and line[j] == 32:
            j += 1
        if i > 0 and j + 1 == n:
            # previous line is all spaces: stop if the one before is too
            k = i - 1
            while k > 0:
                if line[k - 1] == 10:
                    return cur
                if line[k - 1] != 32:
                    break
                k -= 1
        ind = (j - i) // 4
        if line[n - 2] == 58:  # ':'
            ind += 1
        while ind > 0:
            line.extend(b"    ")
            tx(b"    ")
            cur += 4
            _ai[0] |= 2
            ind -= 1
    return cur


def _complete(s, prompt):
    # Port of mp_repl_autocomplete: returns the bytes to insert, or None.
    i = len(s)
    while i > 0 and (chr(s[i - 1]).isalpha() or chr(s[i - 1]).isdigit() or s[i - 1] in b"_."):
        i -= 1
    words = str(s[i:], "utf-8").split(".")
    obj = None
    for w in words[:-1]:
        try:
            obj = G[w] if obj is None and w in G else getattr(obj if obj is not None else builtins, w)
        except Exception:
            return None
    w = words[-1]
    names = dir(obj) if obj is not None else list(G) + dir(builtins)
    m = sorted(set([n for n in names if n.startswith(w) and (n[0] != "_" or w[:1] == "_")]))
    if not m:
        if i == 0 and "import ".startswith(w):
            return "import "[len(w):]
        return None
    p = m[0]
    for n in m[1:]:
        k = len(w)
        while k < len(p) and k < len(n) and p[k] == n[k]:
            k += 1
        p = p[:k]
    if len(m) == 1 or len(p) > len(w):
        return p[len(w):]
    out, col = "", 64
    for n in m:
        gap = (col + 15) // 16 * 16 - col
        if gap < 2:
            gap += 16
        if col + gap + len(n) <= 64:
            out += " " * gap + n
            col += gap + len(n)
        else:
            out += "\n" + n
            col = len(n)
    tx(cook(out + "\n"))
    return ""


def readline(line, prompt, note=None):
    # Returns 0 on Enter, or the control char (1..5) that ended input.
    # note: control message telling the supervisor the REPL is idle.
    orig = cur = len(line)
    esc = 0  # 0 none, 1 ESC, 2 ESC[, 3 ESC[digit, 4 ESC O
    digit = 0
    hcur = -1
    tx(prompt)
    if not line:
        _ai[0] = 1
    cur = _auto_indent(line, cur)
    if note:
        ctl(note)
    while True:
        c = rx()
        last = len(line)
        back = fwd = key = 0
        redraw = False
        if esc == 0:
            if 1 <= c <= 5 and len(line) == orig:
                return c
            elif c == 1 or c == 2:
                key = 72 if c == 1 else 68  # home / left
            elif c == 3:
                return c
            elif c == 4 or c == 11:  # delete at cursor / kill to end
                if c == 11:
                    line[cur:] = b""
                    redraw = True
                elif cur < len(line):
                    line[cur:cur + 1] = b""
                    redraw = True
            elif c == 5 or c == 6:
                key = 70 if c == 5 else 67  # end / right
            elif c == 14 or c == 16:
                key = 66 if c == 14 else 65  # history down / up
            elif c == 21:  # kill to start of line
                line[orig:cur] = b""
                back = cur - orig
                redraw = True
            elif c == 13:
                tx(b"\r\n")
                h = bytes(line[orig:])
                if h and (not hist or hist[0] != h):
                    hist.insert(0, h)
                    del hist[8:]
                return 0
            elif c == 27:
                esc = 1
            elif c == 8 or c == 127:
                if cur > orig:
                    n = 0
                    for i in range(orig, cur):
                        if line[i] != 32:
                            n = 0
                            break
                        n += 1
                    n = 4 if n >= 4 else 1
                    line[cur - n:cur] = b""
                    back = n
                    redraw = True
            elif _ai[0] & 2 and (c == 9 or c == 32):
                # tab/space right after auto-indent: keep indent / remove 3
                _ai[0] = 0
                if c == 32:
                    back = 3
                    line[-3:] = b""
            elif c == 9:
                if len(line) and line[cur - 1] in b" \t\n\r\f\v":
                    s = "    "
                else:
                    s = _complete(line[orig:cur], prompt)
                if s == "":
                    tx(prompt)
                    tx(line[orig:cur])
                    redraw = True
                elif s:
                    line[cur:cur] = s.encode()
                    redraw = True
                    fwd = len(s)
            elif 32 <= c <= 126:
                line[cur:cur] = bytes((c,))
                redraw = True
                fwd = 1
        elif esc == 1:
            esc = 2 if c == 91 else 4 if c == 79 else 0
        elif esc == 2:
            if 48 <= c <= 57:
                esc, digit = 3, c
            else:
                esc, key = 0, c
        elif esc == 3:
            if c == 126:
                if digit in b"17":
                    key = 72
                elif digit in b"48":
                    key = 70
                elif digit == 51 and cur < len(line):
                    line[cur:cur + 1] = b""
                    redraw = True
            esc = 0
        elif esc == 4:
            # readline.c leaves the ESC O state set after H/F; mirror it
            if c == 72 or c == 70:
                key = c
            else:
                esc = 0
        if key == 65 and hcur + 1 < len(hist):  # up
            hcur += 1
            line[orig:] = b""
            line.extend(hist[hcur])
            back, redraw, fwd = cur - orig, True, len(line) - orig
        elif key == 66 and hcur >= 0:  # down
            hcur -= 1
            line[orig:] = b""
            if hcur >= 0:
                line.extend(hist[hcur])
            back, redraw, fwd = cur - orig, True, len(line) - orig
        elif key == 67 and cur < len(line):  # right
            fwd = 1
        elif key == 68 and cur > orig:  # left
            back = 1
        elif key == 72:  # home
            back = cur - orig
        elif key == 70:  # end
            fwd = len(line) - cur
        # redraw the line, efficiently, as readline.c does
        if back > 0:
            _back(back)
            cur -= back
        if redraw:
            if len(line) < last:
                tx(b"\x1b[K")
            if cur < len(line):
                tx(line[cur:])
            _back(len(line) - (cur + fwd))
            cur += fwd
        elif fwd > 0:
            tx(line[cur:cur + fwd])
            cur += fwd
        _ai[0] &= ~2


def continue_with_input(s):
    # py/repl.c mp_repl_continue_with_input, on bytes
    if not s:
        return False
    kw = s[0] == 64  # '@'
    if not kw:
        for w in (b"if", b"while", b"for", b"try", b"with", b"def", b"class", b"async"):
            if s.startswith(w) and (len(s) == len(w) or not (chr(s[len(w)]).isalpha() or chr(s[len(w)]).isdigit() or s[len(w)] == 95)):
                kw = True
                break
    nb = [0, 0, 0]  # () [] {}
    q = 0  # 0 none, 1 ', 2 ", 3 ''', 4 """
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == 39 or c == 34:
            q1, q3 = (1, 3) if c == 39 else (2, 4)
            if (q == 0 or q == q3) and s[i + 1:i + 3] == bytes((c, c)):
                i += 2
                q = q3 - q
            elif q == 0 or q == q1:
                q = q1 - q
        elif c == 92 and i + 1 < n and s[i + 1] in b"'\"\\":
            if q:
                i += 1
        elif q == 0:
            k = b"([{)]}".find(bytes((c,)))
            if k >= 0:
                nb[k % 3] += 1 if k < 3 else -1
        i += 1
    if q >= 3:
        return True
    if (nb[0] > 0 or nb[1] > 0 or nb[2] > 0) and q == 0:
        return True
    if s[-1] == 92:
        return True
    return kw and s[-1] != 10


def input(prompt=""):
    # builtins.input as on a board: the readline editor on the UART
    line = bytearray()
    c = readline(line, prompt)
    if c == 3:
        raise KeyboardInterrupt
    if c == 4 and not line:
        raise EOFError
    return str(line, "utf-8")
