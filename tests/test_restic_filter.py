"""Exclude lines mean what they mean in restic: restic 0.14's own filter test tables
(internal/filter/filter_test.go: matchTests and filterListTests) are the expected values here.

Cases left out, and why:
- matchTests with an empty pattern: restic's ``Match("", path)`` is true, but an empty line
  in an exclude list is skipped (restic's ``ParsePatterns`` does the same), so cairn has no
  single empty pattern to match.
- childMatchTests and the childMatch column of filterListTests: restic uses them to decide
  which directories a restore with ``--include`` enters; cairn's backup and exclude lists
  never need them (an excluded directory is not entered, as in restic).
"""

from __future__ import annotations

import pytest

from cairn.core.errors import UsageError
from cairn.ops.filter_patterns import ExcludePatterns, clean

MATCH_TESTS = [
    ("*.go", "/foo/bar/test.go", True),
    ("*.c", "/foo/bar/test.go", False),
    ("*", "/foo/bar/test.go", True),
    ("**", "/foo/bar/test.go", True),
    ("foo*", "/foo/bar/test.go", True),
    ("bar*", "/foo/bar/test.go", True),
    ("/bar*", "/foo/bar/test.go", False),
    ("bar/*", "/foo/bar/test.go", True),
    ("baz/*", "/foo/bar/test.go", False),
    ("bar/test.go", "/foo/bar/test.go", True),
    ("bar/*.go", "/foo/bar/test.go", True),
    ("ba*/*.go", "/foo/bar/test.go", True),
    ("bb*/*.go", "/foo/bar/test.go", False),
    ("test.*", "/foo/bar/test.go", True),
    ("tesT.*", "/foo/bar/test.go", False),
    ("bar/*", "/foo/bar/baz", True),
    ("bar", "/foo/bar", True),
    ("/foo/bar", "/foo/bar", True),
    ("/foo/bar/", "/foo/bar", True),
    ("/foo/bar", "/foo/baz", False),
    ("/foo/bar", "/foo/baz/", False),
    ("/foo///bar", "/foo/bar", True),
    ("/foo/../bar", "/foo/bar", False),
    ("/foo/../bar", "/bar", True),
    ("/foo", "/foo/baz", True),
    ("/foo/", "/foo/baz", True),
    ("/foo/*", "/foo", False),
    ("/foo/*", "/foo/baz", True),
    ("bar", "/foo/bar/baz", True),
    ("bar", "/foo/bar/test.go", True),
    ("/foo/*test.*", "/foo/bar/test.go", False),
    ("/foo/*/test.*", "/foo/bar/test.go", True),
    ("/foo/*/bar/test.*", "/foo/bar/test.go", False),
    ("/*/*/bar/test.*", "/foo/bar/test.go", False),
    ("/*/*/bar/test.*", "/foo/bar/baz/test.go", False),
    ("/*/*/baz/test.*", "/foo/bar/baz/test.go", True),
    ("/*/foo/bar/test.*", "/foo/bar/baz/test.go", False),
    ("/*/foo/bar/test.*", "/foo/bar/baz/test.go", False),
    ("/foo/bar/test.*", "bar/baz/test.go", False),
    ("/x/y/bar/baz/test.*", "bar/baz/test.go", False),
    ("/x/y/bar/baz/test.c", "bar/baz/test.go", False),
    ("baz/test.*", "bar/baz/test.go", True),
    ("baz/tesT.*", "bar/baz/test.go", False),
    ("test.go", "bar/baz/test.go", True),
    ("*.go", "bar/baz/test.go", True),
    ("*.c", "bar/baz/test.go", False),
    ("sdk", "/foo/bar/sdk", True),
    ("sdk", "/foo/bar/sdk/test/sdk_foo.go", True),
    ("sdk/*/cpp/*/*vars*.html", "/usr/share/doc/libreoffice/sdk/docs/cpp/ref/a00517.html", False),
    ("foo/**/bar/*.go", "/home/user/foo/work/special/project/bar/test.go", True),
    ("foo/**/bar/*.go", "/home/user/foo/bar/test.go", True),
    ("foo/**/bar/*.go", "x/foo/bar/test.go", True),
    ("foo/**/bar/*.go", "foo/bar/test.go", True),
    ("foo/**/bar/*.go", "foo/bar/baz/bar/test.go", True),
    ("foo/**/bar/*.go", "/home/user/foo/test.c", False),
    ("foo/**/bar/*.go", "bar/foo/main.go", False),
    ("foo/**/bar/*.go", "/foo/bar/main.go", True),
    ("foo/**/bar/*.go", "bar/main.go", False),
    ("foo/**/bar", "/home/user/foo/x/y/bar", True),
    ("foo/**/bar", "/home/user/foo/x/y/bar/main.go", True),
    ("foo/**/bar/**/x", "/home/user/foo/bar/x", True),
    ("foo/**/bar/**/x", "/home/user/foo/blaaa/blaz/bar/shared/work/x", True),
    ("user/**/important*", "/home/user/work/x/y/hidden/x", False),
    ("user/**/hidden*/**/c", "/home/user/work/x/y/hidden/z/a/b/c", True),
    ("c:/foo/*test.*", "c:/foo/bar/test.go", False),
    ("c:/foo", "c:/foo/bar", True),
    ("c:/foo/", "c:/foo/bar", True),
    ("c:/foo/*/test.*", "c:/foo/bar/test.go", True),
    ("c:/foo/*/bar/test.*", "c:/foo/bar/test.go", False),
]
LIST_TESTS = [
    ([], "/foo/bar/test.go", False),
    (["*.go"], "/foo/bar/test.go", True),
    (["*.go"], "/foo/bar", False),
    (["*.c"], "/foo/bar/test.go", False),
    (["*.go", "*.c"], "/foo/bar/test.go", True),
    (["*"], "/foo/bar/test.go", True),
    (["x"], "/foo/bar/test.go", False),
    (["?"], "/foo/bar/test.go", False),
    (["?", "x"], "/foo/bar/x", True),
    (["/*/*/bar/test.*"], "/foo/bar/test.go", False),
    (["/*/*/bar/test.*"], "/foo/bar/bar", False),
    (["/*/*/bar/test.*", "*.go"], "/foo/bar/test.go", True),
    (["", "*.c"], "/foo/bar/test.go", False),
    (["!**", "*.go"], "/foo/bar/test.go", True),
    (["!**", "*.c"], "/foo/bar/test.go", False),
    (["/foo/*/test.*", "!*.c"], "/foo/bar/test.c", False),
    (["/foo/*/test.*", "!*.c"], "/foo/bar/test.go", True),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.go", False),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.c", True),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/file.go", True),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/other/test.go", True),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar", False),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar/test.go", False),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar/test.go/child", False),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar", "/foo/bar/test*"], "/foo/bar/test.go/child", True),
    (["/foo/bar/*"], "/foo", False),
    (["/foo/bar/*", "!/foo/bar/[a-m]*"], "/foo", False),
    (["/foo/**/test.c"], "/foo/bar/foo/bar/test.c", True),
    (["/foo/*/test.c"], "/foo/bar/foo/bar/test.c", False),
]


@pytest.mark.parametrize(("pattern", "path", "match"), MATCH_TESTS)
def test_restic_match_table(pattern: str, path: str, match: bool) -> None:
    assert ExcludePatterns([pattern]).matches(path) is match
    assert ExcludePatterns([pattern]).matches(path.encode()) is match


@pytest.mark.parametrize(("patterns", "path", "match"), LIST_TESTS)
def test_restic_list_table(patterns: list[str], path: str, match: bool) -> None:
    assert ExcludePatterns(patterns).matches(path) is match


def test_an_empty_list_excludes_nothing() -> None:
    assert not ExcludePatterns([])
    assert not ExcludePatterns(["", "!*.c"])  # a negation with nothing before cancels nothing
    assert not ExcludePatterns([""]).matches("/x")


@pytest.mark.parametrize(
    ("pattern", "cleaned"),
    [
        ("/foo///bar", "/foo/bar"),
        ("/foo/../bar", "/bar"),
        ("./foo", "foo"),
        ("foo/./bar", "foo/bar"),
        ("foo//bar", "foo/bar"),
        ("foo/", "foo"),
        ("//foo", "/foo"),
        ("/../foo", "/foo"),  # at the root, '..' stays at the root
        ("a/b/../../c", "c"),
    ],
)
def test_patterns_are_cleaned_as_restic_cleans_them(pattern: str, cleaned: str) -> None:
    assert clean(pattern) == cleaned
    for path in ("/foo/bar", "/bar", "/x/foo", "/x/foo/bar/y", "/c/d", "/foo"):
        want = ExcludePatterns([cleaned]).matches(path)
        assert ExcludePatterns([pattern]).matches(path) is want
    assert ExcludePatterns(["/foo///bar"]).matches("/foo/bar/baz")
    assert ExcludePatterns(["foo/./bar"]).matches("/x/foo/bar")


@pytest.mark.parametrize("pattern", ["..", "../foo", "foo/../..", ".", "./", "!../x"])
def test_a_pattern_that_can_never_match_is_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="can never match"):
        ExcludePatterns(["*.o", pattern])


@pytest.mark.parametrize("pattern", ["test/[", "test/**/[", "a[]", "a[-]", "x\\", "[a-"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="invalid pattern"):
        ExcludePatterns([pattern])


def test_escapes() -> None:
    star = ExcludePatterns(["foo\\*"])
    assert star.matches("/d/foo*")
    assert not star.matches("/d/foo")
    assert not star.matches("/d/foox")
    assert ExcludePatterns(["a\\?b"]).matches("/a?b")
    assert not ExcludePatterns(["a\\?b"]).matches("/axb")
    assert ExcludePatterns(["[\\]]x"]).matches("/]x")
    assert ExcludePatterns(["\\[x\\]"]).matches("/[x]")
    assert not ExcludePatterns(["\\[x\\]"]).matches("/x")


def test_classes_are_go_classes() -> None:
    assert ExcludePatterns(["[^a]b"]).matches("/xb")
    assert not ExcludePatterns(["[^a]b"]).matches("/ab")
    assert ExcludePatterns(["[!a]b"]).matches("/!b")  # '!' is no negation in Go
    assert not ExcludePatterns(["[!a]b"]).matches("/xb")
    assert not ExcludePatterns(["[!-0]"]).matches("//")  # a class never matches '/'


def test_the_last_matching_line_decides() -> None:
    lines = ExcludePatterns(["*.log", "!keep*.log", "keep-not*.log"])
    assert lines.matches("/a/x.log")
    assert not lines.matches("/a/keep.log")
    assert lines.matches("/a/keep-not.log")
    assert not lines.matches("/a/x.txt")


def test_a_pattern_matches_everything_below_what_it_matches() -> None:
    assert ExcludePatterns(["sdk"]).matches("/home/u/sdk/docs/a.html")
    assert ExcludePatterns(["/home/u"]).matches("/home/u/x")
    assert not ExcludePatterns(["/home/u"]).matches("/home/user")


def test_ignore_case() -> None:
    assert ExcludePatterns(["*.JPG", "!KEEP*"], ignore_case=True).matches("/a/x.jpg")
    assert not ExcludePatterns(["*.JPG", "!KEEP*"], ignore_case=True).matches("/a/keep.jpg")
    assert not ExcludePatterns(["*.JPG"]).matches("/a/x.jpg")
