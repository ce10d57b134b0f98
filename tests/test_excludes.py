"""PathMatcher and read_pattern_file: the exclude/include pattern language."""

from __future__ import annotations

import pytest

from cairn.core.errors import UsageError
from cairn.ops.excludes import PathMatcher, read_pattern_file


def m(*patterns: str | bytes) -> PathMatcher:
    return PathMatcher(patterns)


def test_no_patterns_match_nothing():
    matcher = m()
    assert not matcher
    assert not matcher.matches(b"/")
    assert not matcher.matches(b"/anything/at/all")


def test_empty_and_root_only_patterns_are_ignored():
    matcher = m("", "/", "//")
    assert not matcher
    assert not matcher.matches(b"/a")


def test_pattern_without_slash_matches_any_single_component():
    matcher = m("*.tmp")
    assert matcher
    assert matcher.matches(b"/x.tmp")
    assert matcher.matches(b"/home/u/work/x.tmp")
    assert matcher.matches(b"/home/u/.tmp")  # '*' may match nothing
    assert not matcher.matches(b"/home/u/x.tmpl")
    assert not matcher.matches(b"/home/u/x.tmp/child")  # the parent is excluded, not the child
    assert not matcher.matches(b"/home/u/xtmp")


def test_plain_name_matches_whole_component_only():
    matcher = m("cache")
    assert matcher.matches(b"/cache")
    assert matcher.matches(b"/home/u/cache")
    assert not matcher.matches(b"/home/u/mycache")
    assert not matcher.matches(b"/home/u/cache2")
    assert not matcher.matches(b"/home/u/cache/file")


def test_star_does_not_cross_slashes():
    matcher = m("/home/*/notes")
    assert matcher.matches(b"/home/u/notes")
    assert not matcher.matches(b"/home/u/sub/notes")
    assert not m("a*b").matches(b"/a/b")


def test_question_mark_is_one_character_but_never_a_slash():
    matcher = m("file?.txt")
    assert matcher.matches(b"/d/file1.txt")
    assert not matcher.matches(b"/d/file.txt")
    assert not matcher.matches(b"/d/file12.txt")
    assert not m("a?b").matches(b"/x/a/b")


def test_wildcards_take_a_multibyte_utf8_character_as_one_character():
    """'?' and '[...]' stand for one character (the module's promise); 'é' is one character,
    two bytes in UTF-8. An undecodable byte counts as one character of its own."""
    assert m("caf?").matches("/docs/café".encode())
    assert m("??.txt").matches("/docs/é1.txt".encode())
    assert not m("???.txt").matches("/docs/é1.txt".encode())
    assert m("[é]t[é]").matches("/d/été".encode())
    assert m("caf[!e]").matches("/d/café".encode())
    assert m(b"caf?").matches(b"/d/caf\xe9")


def test_double_star_crosses_components():
    matcher = m("**/deep/*.log")
    assert matcher.matches(b"/deep/a.log")
    assert matcher.matches(b"/src/deep/a.log")
    assert matcher.matches(b"/src/x/y/deep/a.log")
    assert not matcher.matches(b"/src/deep/sub/a.log")
    assert not matcher.matches(b"/src/notdeep/a.log")
    assert not matcher.matches(b"/src/deep/a.txt")


def test_double_star_at_the_end_matches_everything_below():
    matcher = m("/srv/data/**")
    assert matcher.matches(b"/srv/data/a")
    assert matcher.matches(b"/srv/data/a/b/c")
    assert not matcher.matches(b"/srv/database/a")
    assert not matcher.matches(b"/srv/other/a")


def test_double_star_in_the_middle_matches_zero_or_more_directories():
    matcher = m("/a/**/b")
    assert matcher.matches(b"/a/x/b")
    assert matcher.matches(b"/a/x/y/z/b")
    assert not matcher.matches(b"/a/x/c")
    # As in gitignore and restic, '/**/' also matches no directory at all.
    assert matcher.matches(b"/a/b")


def test_anchored_pattern_matches_only_from_the_root():
    matcher = m("/abs/path/sub/x")
    assert matcher.matches(b"/abs/path/sub/x")
    assert not matcher.matches(b"/other/abs/path/sub/x")
    assert not matcher.matches(b"/abs/path/sub/x/y")
    assert not matcher.matches(b"/abs/path/sub/xy")


def test_trailing_slash_is_ignored():
    matcher = m("build/", "/abs/dir/")
    assert matcher.matches(b"/p/build")
    assert matcher.matches(b"/abs/dir")
    assert not matcher.matches(b"/p/abs/dir")


def test_unanchored_pattern_with_slash_matches_a_trailing_part():
    matcher = m("cache/*.bin")
    assert matcher.matches(b"/home/u/cache/x.bin")
    assert matcher.matches(b"/cache/x.bin")
    assert not matcher.matches(b"/home/u/mycache/x.bin")  # starts at a component boundary
    assert not matcher.matches(b"/home/u/cache/sub/x.bin")
    assert m("u/cache").matches(b"/home/u/cache")
    assert not m("u/cache").matches(b"/home/uu/cache")


def test_character_classes():
    matcher = m("file[0-9].txt")
    assert matcher.matches(b"/d/file7.txt")
    assert not matcher.matches(b"/d/filex.txt")
    assert not matcher.matches(b"/d/file10.txt")
    assert m("[abc]x").matches(b"/d/bx")
    assert not m("[abc]x").matches(b"/d/dx")


def test_negated_character_classes():
    matcher = m("file[!0-9].txt")
    assert matcher.matches(b"/d/filex.txt")
    assert not matcher.matches(b"/d/file3.txt")
    assert m("[!]]x").matches(b"/d/ax")
    assert not m("[!]]x").matches(b"/d/]x")


def test_character_class_starting_with_bracket():
    assert m("[]]x").matches(b"/d/]x")
    assert not m("[]]x").matches(b"/d/ax")
    assert m("[]a]x").matches(b"/d/ax")


def test_negated_character_class_never_matches_a_slash():
    """A class stands for one character of a name: a path separator is never one."""
    assert not m("a[!x]b").matches(b"/d/a/b")
    assert not m("/d/a[!x]b").matches(b"/d/a/b")


def test_unclosed_bracket_is_literal():
    matcher = m("a[b")
    assert matcher.matches(b"/d/a[b")
    assert not matcher.matches(b"/d/ab")


def test_regex_metacharacters_are_literal():
    matcher = m("a.b+(c)$", "x^y|z")
    assert matcher.matches(b"/d/a.b+(c)$")
    assert not matcher.matches(b"/d/axb+(c)$")
    assert not matcher.matches(b"/d/aab(c)")
    assert matcher.matches(b"/d/x^y|z")
    assert not matcher.matches(b"/d/x")
    assert not matcher.matches(b"/d/z")


def test_backslash_in_a_name_is_literal():
    matcher = m("a\\b", "[\\]q")
    assert matcher.matches(b"/d/a\\b")
    assert not matcher.matches(b"/d/ab")
    assert matcher.matches(b"/d/\\q")


def test_newline_in_a_name_is_matched_by_star():
    assert m("a*b").matches(b"/d/a\nb")
    assert m("/d/**").matches(b"/d/x\ny/z")


def test_several_patterns_are_alternatives():
    matcher = m("*.tmp", "/var/log", "cache")
    assert matcher.patterns == ["*.tmp", "/var/log", "cache"]
    assert matcher.matches(b"/a/b.tmp")
    assert matcher.matches(b"/var/log")
    assert matcher.matches(b"/a/cache")
    assert not matcher.matches(b"/var/log2")
    assert not matcher.matches(b"/a/b.txt")


def test_non_utf8_bytes_in_patterns_and_paths():
    name = b"caf\xe9-\xff\xfe"  # Latin-1 bytes: not valid UTF-8
    matcher = m(b"caf\xe9-*")
    assert matcher.matches(b"/photos/" + name)
    assert not matcher.matches(b"/photos/cafe-x")
    assert not matcher.matches("/photos/café-x".encode())  # UTF-8 é is two other bytes
    # A bytes pattern round-trips through the str form kept in .patterns.
    assert PathMatcher(matcher.patterns).matches(b"/photos/" + name)
    assert m(b"*\xff*").matches(b"/a/x\xffy")
    assert not m(b"*\xff*").matches(b"/a/xy")
    assert m(b"/a/\x80/**").matches(b"/a/\x80/b/\x81")


def test_non_ascii_str_pattern_matches_utf8_path():
    matcher = m("résumé*.pdf")
    assert matcher.matches("/home/u/résumé-2024.pdf".encode())
    assert not matcher.matches(b"/home/u/resume-2024.pdf")


def test_invalid_pattern_is_a_usage_error():
    with pytest.raises(UsageError, match="invalid pattern"):
        PathMatcher(["file[z-a]"])


# ------------------------------------------------------------------ read_pattern_file
def test_read_pattern_file(tmp_path):
    f = tmp_path / "excludes"
    f.write_bytes(
        b"# comment\n"
        b"*.tmp\n"
        b"\n"
        b"   \n"
        b"  cache  \n"
        b"/abs/path/sub/x\r\n"
        b"**/deep/*.log\n"
        b"  # indented comment\n"
        b"caf\xe9*\n"
        b"last-without-newline"
    )
    patterns = read_pattern_file(str(f))
    assert patterns[:4] == ["*.tmp", "cache", "/abs/path/sub/x", "**/deep/*.log"]
    assert patterns[5] == "last-without-newline"
    assert len(patterns) == 6
    matcher = PathMatcher(patterns)
    assert matcher.matches(b"/x/caf\xe9 au lait")  # the non-UTF-8 pattern keeps its bytes
    assert matcher.matches(b"/a/b/deep/c.log")
    assert matcher.matches(b"/a/cache")
    assert matcher.matches(b"/abs/path/sub/x")
    assert matcher.matches(b"/k/last-without-newline")
    assert not matcher.matches(b"/a/comment")
    assert not matcher.matches(b"/a/# comment")


def test_read_pattern_file_empty(tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    assert read_pattern_file(str(f)) == []
    f.write_bytes(b"# only a comment\n\n")
    assert read_pattern_file(str(f)) == []


def test_read_pattern_file_missing(tmp_path):
    with pytest.raises(UsageError, match="cannot read exclude file"):
        read_pattern_file(str(tmp_path / "nope"))
