"""Taking a directory's tree from the files cache instead of building it again.

A tree blob is a function of what the walk read for each entry of the directory: its name and
``lstat`` (type, mode, owner, size, times, inode, device, link count, device number), its
owner's and group's names, its content ids (a file) or subtree id (a directory), its symlink
target and its extended attributes. The backup records, with each directory's tree id, a digest
of everything in that list but the last two (``listing_digest``). When a later walk of the
directory reads entries whose digest is the one recorded, the tree it would build is the
recorded one, so it is taken as it is: no node, no xattr or readlink call, no encoding, no hash.

Why the last two need not be in the digest: changing a symlink's target means replacing the
symlink, a new inode made now, with a ctime of now; setting or removing an extended attribute
sets the entry's ctime to now. So either changes the entry's ctime, which is in the digest. The
one gap is a change made within the same clock tick as the ctime the walk saw, after it looked:
the ctime stays the same. So a directory is only recorded when none of its entries has a ctime
later than ``RACY_NS`` before the backup started (a tree whose entries were still changing is
built again next time, then recorded). Everything else a node holds comes from ``lstat`` and
is compared as it is, the access time included (the backup opens files and directories with
O_NOATIME, so its own reading moves no access time where it may; a file read by anyone else
has its directory's tree built again).

What decides which entries are in a listing (excludes, tag files, --exclude-larger-than,
--one-file-system) is in the digest through the listing itself: another choice of entries is
another list of names and stats, another subtree id below a mount point. So the backup's
options need no fingerprint, and backups with other options may share a files cache.

A recorded tree is taken only if its id is in the repository's index, every content blob of
its files is (they are looked up as for any unchanged file), and every subdirectory's tree was
taken the same way (so its blobs were checked) or built and stored by this run: a prune that
removed any blob of it makes the directory be built again. ``--force`` reads every file, and
``--ignore-ctime`` and ``--ignore-inode`` say the ctime cannot be trusted on the source: with
any of them no tree is taken (they are still recorded: the record only says which listing
made which tree).
"""

from __future__ import annotations

import hashlib
import os

import msgpack

from cairn.model.node import TREE_VERSION
from cairn.ops.fsmeta import group_name, user_name

# Changes whenever a node records something else, or records it from something else: a record
# written by another version of the walk is never taken.
LISTING_VERSION = 1
# how long before the backup started an entry must have last changed for its directory's tree
# to be recorded (a few clock ticks, with margin for file systems of coarse timestamps)
RACY_NS = 2_000_000_000
DIGEST_LEN = 32


def listing_digest(stats: list[tuple[bytes, os.stat_result]], extras: list[bytes | None]) -> bytes:
    """The digest of a directory's listing: for each entry, in the order of the tree, its name
    and ``lstat``, its owner's and group's names, and its ``extra``: a file's content ids
    (joined), a directory's subtree id, or None."""
    # st[:7]: mode, inode, device, link count, uid, gid, size
    rows = [
        (name, st[:7], st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, extra)
        for (name, st), extra in zip(stats, extras, strict=True)
    ]
    # the names of the owners and groups (from the system's user database) of those entries
    owners = {st.st_uid for _, st in stats}
    groups = {st.st_gid for _, st in stats}
    names = [
        sorted((u, user_name(u)) for u in owners),
        sorted((g, group_name(g)) for g in groups),
    ]
    packed = msgpack.packb([LISTING_VERSION, TREE_VERSION, rows, names], use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=DIGEST_LEN).digest()
