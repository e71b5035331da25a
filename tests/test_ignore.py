"""gitignore-style rules (.uotaignore and the built-in lists): a table of cases as git
decides them, and clear errors for rules that cannot be parsed."""

from __future__ import annotations

import pytest

from uota_core.ignore import IgnoreError, IgnoreRules


@pytest.mark.parametrize(("rules", "path", "is_dir", "excluded"), [
    # a name without a slash matches at any depth, files and directories
    (["*.bak"], "a.bak", False, True),
    (["*.bak"], "app/deep/a.bak", False, True),
    (["*.bak"], "app/a.bak.py", False, False),
    (["build"], "x/build", True, True),
    (["build"], "x/build/out.py", False, True),  # inside an excluded directory
    # a trailing slash: directories only
    (["logs/"], "logs", True, True),
    (["logs/"], "logs", False, False),
    (["logs/"], "app/logs/today.txt", False, True),
    # a leading or inner slash anchors at the root
    (["/main.py"], "main.py", False, True),
    (["/main.py"], "app/main.py", False, False),
    (["app/*.tmp"], "app/x.tmp", False, True),
    (["app/*.tmp"], "lib/app/x.tmp", False, False),
    (["app/*.tmp"], "app/sub/x.tmp", False, False),  # * stays within one component
    # ** across components
    (["**/cache"], "cache", True, True),
    (["**/cache"], "a/b/cache", True, True),
    (["a/**/z.py"], "a/z.py", False, True),
    (["a/**/z.py"], "a/b/c/z.py", False, True),
    (["a/**/z.py"], "b/a/z.py", False, False),
    (["data/**"], "data/x/y.bin", False, True),
    (["data/**"], "data", True, False),  # the directory itself is not matched
    # ? and character classes
    (["?.py"], "a.py", False, True),
    (["?.py"], "ab.py", False, False),
    (["[ab].py"], "b.py", False, True),
    (["[!ab].py"], "b.py", False, False),
    (["[!ab].py"], "c.py", False, True),
    (["x[0-9].bin"], "x7.bin", False, True),
    # the last matching rule wins; ! re-includes
    (["*.log", "!keep.log"], "keep.log", False, False),
    (["*.log", "!keep.log"], "other.log", False, True),
    (["!keep.log", "*.log"], "keep.log", False, True),
    (["data/**", "!data/keep.txt"], "data/keep.txt", False, False),
    # ...but not out of an excluded directory (as git)
    (["data/", "!data/keep.txt"], "data/keep.txt", False, True),
    # comments, blank lines, escapes, trailing spaces
    (["# *.py", "", "   "], "a.py", False, False),
    (["\\#notes#"], "#notes#", False, True),
    (["\\!bang"], "!bang", False, True),
    (["*.txt   "], "a.txt", False, True),
    (["a\\ "], "a ", False, True),
    (["*.txt"], "A.TXT", False, False),  # case-sensitive, as git on Linux
])
def test_rules_decide_as_git_does(rules: list[str], path: str, is_dir: bool, excluded: bool) -> None:
    assert IgnoreRules.parse(rules, ".uotaignore").excludes(path, is_dir) is excluded


def test_case_insensitive_lists_and_the_deciding_rule_is_named() -> None:
    rules = IgnoreRules.parse(["*.txt", "*secret*"], "built-in", ignorecase=True)
    assert rules.excludes("config/My_SECRETS.json")
    rule = rules.excluding("app/Secret/x.py")
    assert rule is not None and rule.pattern == "*secret*" and rule.source == "built-in:2"


@pytest.mark.parametrize(("line", "message"), [
    ("app/[abc.py", "'[' is never closed: write \\[ for a literal bracket"),
    ("!", "names no file"),
    ("/", "names no file"),
])
def test_unparsable_rules_say_which_line_and_what_to_do(line: str, message: str) -> None:
    with pytest.raises(IgnoreError) as info:
        IgnoreRules.parse(["*.bak", line], ".uotaignore")
    assert str(info.value).startswith(".uotaignore:2: ") and message in str(info.value)
