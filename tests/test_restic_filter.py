"""Pattern lines mean what they mean in restic: restic 0.14's own filter test tables
(internal/filter/filter_test.go: matchTests, childMatchTests and filterListTests) are the
expected values here.

Cases left out, and why:
- the cases of matchTests and childMatchTests with an empty pattern: restic's
  ``Match("", path)`` is true, but an empty line in a list is skipped (restic's
  ``ParsePatterns`` does the same), so cairn has no single empty pattern to match.

The child-match cases (``may_hold``) decide which directories ``restore --include`` reads.
"""

from __future__ import annotations

import pytest

from cairn.core.errors import UsageError
from cairn.ops.filter_patterns import PatternList, clean

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
LIST_TESTS = [  # patterns, path, match, child may match
    ([], "/foo/bar/test.go", False, False),
    (["*.go"], "/foo/bar/test.go", True, True),
    (["*.go"], "/foo/bar", False, True),
    (["*.c"], "/foo/bar/test.go", False, True),
    (["*.go", "*.c"], "/foo/bar/test.go", True, True),
    (["*"], "/foo/bar/test.go", True, True),
    (["x"], "/foo/bar/test.go", False, True),
    (["?"], "/foo/bar/test.go", False, True),
    (["?", "x"], "/foo/bar/x", True, True),
    (["/*/*/bar/test.*"], "/foo/bar/test.go", False, False),
    (["/*/*/bar/test.*"], "/foo/bar/bar", False, True),
    (["/*/*/bar/test.*", "*.go"], "/foo/bar/test.go", True, True),
    (["", "*.c"], "/foo/bar/test.go", False, True),
    (["!**", "*.go"], "/foo/bar/test.go", True, True),
    (["!**", "*.c"], "/foo/bar/test.go", False, True),
    (["/foo/*/test.*", "!*.c"], "/foo/bar/test.c", False, False),
    (["/foo/*/test.*", "!*.c"], "/foo/bar/test.go", True, True),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.go", False, True),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/test.c", True, True),
    (["/foo/*/*", "!test.*", "*.c"], "/foo/bar/file.go", True, True),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/other/test.go", True, True),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar", False, False),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar/test.go", False, False),
    (["/**/*", "!/foo", "/foo/*", "!/foo/bar"], "/foo/bar/test.go/child", False, False),
    (
        ["/**/*", "!/foo", "/foo/*", "!/foo/bar", "/foo/bar/test*"],
        "/foo/bar/test.go/child",
        True,
        True,
    ),
    (["/foo/bar/*"], "/foo", False, True),
    (["/foo/bar/*", "!/foo/bar/[a-m]*"], "/foo", False, True),
    (["/foo/**/test.c"], "/foo/bar/foo/bar/test.c", True, True),
    (["/foo/*/test.c"], "/foo/bar/foo/bar/test.c", False, False),
]
CHILD_MATCH_TESTS = [
    ("foo/bar", "/foo", True),
    ("baz/bar", "/foo", True),
    ("foo", "/foo/bar", True),
    ("bar", "/foo", True),
    ("baz", "/foo/bar", True),
    ("*", "/foo", True),
    ("*", "/foo/bar", True),
    ("/foo/bar", "/foo", True),
    ("/foo/bar/baz", "/foo", True),
    ("/foo/bar/baz", "/foo/bar", True),
    ("/foo/bar/baz", "/foo/baz", False),
    ("/foo/**/baz", "/foo/bar/baz", True),
    ("/foo/**/baz", "/foo/bar/baz/blah", True),
    ("/foo/**/qux", "/foo/bar/baz/qux", True),
    ("/foo/**/qux", "/foo/bar/baz", True),
    ("/foo/**/qux", "/foo/bar/baz/boo", True),
    ("/foo/**", "/foo/bar/baz", True),
    ("/foo/**", "/foo/bar", True),
    ("foo/**/bar/**/x", "/home/user/foo", True),
    ("foo/**/bar/**/x", "/home/user/foo/bar", True),
    ("foo/**/bar/**/x", "/home/user/foo/blaaa/blaz/bar/shared/work/x", True),
    ("/foo/*/qux", "/foo/bar", True),
    ("/foo/*/qux", "/foo/bar/boo", False),
    ("/foo/*/qux", "/foo/bar/boo/xx", False),
    ("/baz/bar", "/foo", False),
    ("/foo", "/foo/bar", True),
    ("/*", "/foo", True),
    ("/*", "/foo/bar", True),
    ("/foo", "/foo/bar", True),
    ("/**", "/foo", True),
    ("/*/**", "/foo", True),
    ("/*/**", "/foo/bar", True),
    ("/*/bar", "/foo", True),
    ("/bar/*", "/foo", False),
    ("/foo/*/baz", "/foo/bar", True),
    ("/foo/*/baz", "/foo/baz", True),
    ("/foo/*/baz", "/bar/baz", False),
    ("/**/*", "/foo", True),
    ("/**/bar", "/foo/bar", True),
]


@pytest.mark.parametrize(("pattern", "path", "match"), MATCH_TESTS)
def test_restic_match_table(pattern: str, path: str, match: bool) -> None:
    assert PatternList([pattern]).matches(path) is match
    assert PatternList([pattern]).matches(path.encode()) is match


@pytest.mark.parametrize(("patterns", "path", "match", "child"), LIST_TESTS)
def test_restic_list_table(patterns: list[str], path: str, match: bool, child: bool) -> None:
    assert PatternList(patterns).matches(path) is match
    assert PatternList(patterns).may_hold(path) is child


@pytest.mark.parametrize(("pattern", "path", "child"), CHILD_MATCH_TESTS)
def test_restic_child_match_table(pattern: str, path: str, child: bool) -> None:
    assert PatternList([pattern]).may_hold(path) is child


def test_an_empty_list_excludes_nothing() -> None:
    assert not PatternList([])
    assert not PatternList(["", "!*.c"])  # a negation with nothing before cancels nothing
    assert not PatternList([""]).matches("/x")


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
        want = PatternList([cleaned]).matches(path)
        assert PatternList([pattern]).matches(path) is want
    assert PatternList(["/foo///bar"]).matches("/foo/bar/baz")
    assert PatternList(["foo/./bar"]).matches("/x/foo/bar")


@pytest.mark.parametrize("pattern", ["..", "../foo", "foo/../..", ".", "./", "!../x"])
def test_a_pattern_that_can_never_match_is_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="can never match"):
        PatternList(["*.o", pattern])


@pytest.mark.parametrize("pattern", ["test/[", "test/**/[", "a[]", "a[-]", "x\\", "[a-"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="invalid pattern"):
        PatternList([pattern])


def test_escapes() -> None:
    star = PatternList(["foo\\*"])
    assert star.matches("/d/foo*")
    assert not star.matches("/d/foo")
    assert not star.matches("/d/foox")
    assert PatternList(["a\\?b"]).matches("/a?b")
    assert not PatternList(["a\\?b"]).matches("/axb")
    assert PatternList(["[\\]]x"]).matches("/]x")
    assert PatternList(["\\[x\\]"]).matches("/[x]")
    assert not PatternList(["\\[x\\]"]).matches("/x")


def test_classes_are_go_classes() -> None:
    assert PatternList(["[^a]b"]).matches("/xb")
    assert not PatternList(["[^a]b"]).matches("/ab")
    assert PatternList(["[!a]b"]).matches("/!b")  # '!' is no negation in Go
    assert not PatternList(["[!a]b"]).matches("/xb")
    assert not PatternList(["[!-0]"]).matches("//")  # a class never matches '/'


def test_the_last_matching_line_decides() -> None:
    lines = PatternList(["*.log", "!keep*.log", "keep-not*.log"])
    assert lines.matches("/a/x.log")
    assert not lines.matches("/a/keep.log")
    assert lines.matches("/a/keep-not.log")
    assert not lines.matches("/a/x.txt")


def test_a_pattern_matches_everything_below_what_it_matches() -> None:
    assert PatternList(["sdk"]).matches("/home/u/sdk/docs/a.html")
    assert PatternList(["/home/u"]).matches("/home/u/x")
    assert not PatternList(["/home/u"]).matches("/home/user")


def test_ignore_case() -> None:
    assert PatternList(["*.JPG", "!KEEP*"], ignore_case=True).matches("/a/x.jpg")
    assert not PatternList(["*.JPG", "!KEEP*"], ignore_case=True).matches("/a/keep.jpg")
    assert not PatternList(["*.JPG"]).matches("/a/x.jpg")
