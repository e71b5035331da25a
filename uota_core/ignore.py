"""gitignore-style exclusion rules (the syntax of `.uotaignore` and of uota's built-in lists).

Supported as git documents it: blank lines and `#` comments, `\\#` / `\\!` escapes, trailing
spaces (unless escaped), `!` re-includes, a trailing `/` matches directories only, a leading
or inner `/` anchors the pattern at the project root (else it matches a name at any depth),
`*`, `?`, `[a-z]` / `[!a-z]` within one path component, and `**` across components. The last
matching rule wins, and, as in git, a file inside an excluded directory cannot be re-included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from uota_core.errors import UotaError


class IgnoreError(UotaError):
    """A rule in an exclusion list cannot be parsed."""


@dataclass(frozen=True)
class Rule:
    pattern: str  # the rule as written, for messages
    source: str  # where it was written ("file:line" or a built-in list's name)
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _class(body: str, i: int, where: str) -> tuple[str, int]:
    """The regex of the `[...]` class starting at body[i]; returns it and the index after it."""
    j = i + 1
    if j < len(body) and body[j] in "!^":
        j += 1
    if j < len(body) and body[j] == "]":
        j += 1  # a leading ']' is a literal member
    while j < len(body) and body[j] != "]":
        j += 1
    if j >= len(body):
        raise IgnoreError(f"{where}: '[' is never closed: write \\[ for a literal bracket")
    inner = body[i + 1:j]
    negate = inner[:1] in ("!", "^")
    inner = inner[1:] if negate else inner
    inner = inner.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
    return ("[^/" if negate else "[") + inner + "]", j + 1


def _translate(body: str, where: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**", i) and (i == 0 or body[i - 1] == "/") and (i + 2 == len(body) or body[i + 2] == "/"):
            if i + 2 == len(body):
                out.append(".*")  # `x/**`: everything inside
            else:
                out.append("(?:[^/]+/)*")  # `**/`: zero or more directories
                i += 1
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            regex, i = _class(body, i, where)
            out.append(regex)
        elif c == "\\" and i + 1 < len(body):
            out.append(re.escape(body[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_rule(line: str, source: str, ignorecase: bool = False) -> Rule | None:
    """One line of an ignore file as a Rule; None for a blank line or a comment."""
    text = line.rstrip("\n").rstrip("\r")
    if text.startswith("#"):
        return None
    while text.endswith(" ") and not text.endswith("\\ "):
        text = text[:-1]
    if not text:
        return None
    where = f"{source}: {line.strip()!r}"
    negate = text.startswith("!")
    body = text[1:] if negate else text
    if body.startswith(("\\#", "\\!")):
        body = body[1:]
    dir_only = body.endswith("/") and not body.endswith("\\/")
    body = body.rstrip("/") if dir_only else body
    if not body or body == "/":
        raise IgnoreError(f"{where} names no file: write a name or pattern after it, or delete the line")
    anchored = "/" in body
    body = body.lstrip("/")
    regex = _translate(body, where)
    prefix = "" if anchored or body.startswith("**/") else "(?:[^/]+/)*"
    return Rule(line.strip(), source, re.compile(prefix + regex + r"\Z", re.IGNORECASE if ignorecase else 0),
                negate, dir_only)


class IgnoreRules:
    """An ordered list of rules, asked about paths relative to the project root."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = list(rules)

    @classmethod
    def parse(cls, lines: Iterable[str], source: str, ignorecase: bool = False) -> "IgnoreRules":
        rules = []
        for n, line in enumerate(lines, 1):
            rule = parse_rule(line, f"{source}:{n}", ignorecase)
            if rule is not None:
                rules.append(rule)
        return cls(rules)

    def __add__(self, other: "IgnoreRules") -> "IgnoreRules":
        return IgnoreRules(self.rules + other.rules)

    def deciding(self, path: str, is_dir: bool = False) -> Rule | None:
        """The last rule matching `path` itself (a negated one re-includes), ignoring its parents."""
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(path):
                return rule
        return None

    def excluding(self, path: str, is_dir: bool = False) -> Rule | None:
        """The rule that excludes `path` or one of its parent directories, or None if it is kept."""
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            last = depth == len(parts)
            rule = self.deciding("/".join(parts[:depth]), is_dir=is_dir or not last)
            if rule is not None and not rule.negate:
                return rule
        return None

    def excludes(self, path: str, is_dir: bool = False) -> bool:
        return self.excluding(path, is_dir) is not None
