"""``restore_entries``: a restore's entries into its target, file by file (``execute``) or in
pack order (``packexec``), as its options say."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from cairn.core.errors import UsageError
from cairn.ops.restore import packorder, schedule
from cairn.ops.restore.execute import Executor, RestoreOptions
from cairn.ops.restore.packexec import PackExecutor
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Lookup, Read
from cairn.ops.restore.tally import RestoreSummary, Tally
from cairn.ops.restore.writer import FileWriter
from cairn.ops.restore.zeros import ZeroBlob
from cairn.ops.safefs import Target
from cairn.repo.repository import Repository


def restore_entries(
    repo: Repository,
    entries: Iterable[Entry],
    target_path: str,
    options: RestoreOptions,
    tally: Tally,
    *,
    stop_when_archived: bool = False,
    before_reading: Callable[[Read], None] | None = None,
    root: Entry | None = None,
) -> RestoreSummary:
    """Restores ``entries`` (a ``Planner``'s) into ``target_path``. ``root``: the directory
    the target stands for (its parts are empty), whose metadata the target gets last."""
    try:
        target = Target(target_path)
    except FileExistsError:
        raise UsageError(f"cannot restore into {target_path}: not a directory") from None
    except OSError as e:
        raise UsageError(f"cannot restore into {target_path}: {e.strerror}") from None
    try:
        writer = FileWriter(target, tally)
        executor = PackExecutor if options.pack_order else Executor
        executor(
            repo,
            options,
            tally,
            writer,
            stop_when_archived=stop_when_archived,
            before_reading=before_reading,
            root=root,
        ).run(entries)
    finally:
        target.close()
    return tally.summary


def reads(
    entries: Iterable[Entry],
    lookup: Lookup,
    pack_order: bool,
    gap: int,
    zero: ZeroBlob | None = None,
    window_places: int = packorder.WINDOW_PLACES,
) -> Iterator[Read]:
    """Every read of pack data that restoring ``entries`` makes, in pack order (reading through
    gaps up to ``gap``, in windows of at most ``window_places``) or file by file: exactly the
    requests the restore with these options sends; the cost estimate and the thaw count these.
    ``zero``: the repository's blob of zeros, which is not read (``zero_blob``)."""
    if pack_order:
        return packorder.requests(entries, lookup, gap, zero, window_places)
    return schedule.requests(entries, lookup, zero)


def zero_blob(repo: Repository) -> ZeroBlob:
    """The blob a run of zeros is cut into in ``repo``: a restore does not read it."""
    return ZeroBlob(repo.config.chunker, repo.blob_id)
