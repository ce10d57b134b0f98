"""Restoring a snapshot (or a part of it) into a target directory, one job per module:

- ``plan``: the entries to restore, walking the trees as the restore goes, with include and
  exclude patterns (a dump walks the same way);
- ``schedule``: pure; the restore's jobs (directories, batches of small files, large files in
  parts, hardlinks) and which pack ranges each reads, in how many requests; the cost estimate
  and the thaw of archived packs count the same reads;
- ``source``: fetches and authenticates the blobs as the schedule says;
- ``writer``: creates the entries under the target, never outside it;
- ``zeros``: the blob of zeros, never read, and the zeros in other blobs, left as holes;
- ``packorder``: pure; the same entries in windows of files whose blobs are read pack by pack,
  each needed range once, for an object store where every request waits a round trip;
- ``execute`` and ``packexec``: run the jobs on threads, and the metadata of directories last;
- ``run``: ``restore_entries`` picks one of the two as the options say; ``reads`` counts the
  reads either makes;
- ``tally`` and ``verify``: what was restored and what went wrong; reading files back.
"""

from cairn.ops.restore.execute import RestoreOptions
from cairn.ops.restore.plan import Entry, Planner, Selection
from cairn.ops.restore.run import reads, restore_entries, zero_blob
from cairn.ops.restore.schedule import Read, requests
from cairn.ops.restore.tally import RestoreSummary, Tally

__all__ = [
    "Entry",
    "Planner",
    "Read",
    "RestoreOptions",
    "RestoreSummary",
    "Selection",
    "Tally",
    "reads",
    "requests",
    "restore_entries",
    "zero_blob",
]
