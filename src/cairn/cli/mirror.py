"""cairn mirror: keep a directory in a bucket file for file (docs/mirror.md)."""

from __future__ import annotations

import functools
import importlib
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import click

from cairn.app.context import StoreOptions
from cairn.app.passwords import PasswordSource
from cairn.cli.common import password_options, store_options
from cairn.cli.helpformat import CairnCommand, CairnGroup
from cairn.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from cairn.core.units import format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output
from cairn.ui.usage import store_line

if TYPE_CHECKING:
    from cairn.app import mirror as app
else:

    class _Lazy:
        """The mirror's use cases (HTTP, pull, encryption and their libraries) load when a
        mirror command runs, so that every other command starts as fast as before."""

        def __getattr__(self, name: str) -> Any:
            return getattr(importlib.import_module("cairn.app.mirror"), name)

    app = _Lazy()

SHOWN = 20  # problems named in a summary


@click.group("mirror", cls=CairnGroup)
def command() -> None:
    """Keep a directory in a bucket file for file, with a manifest of its metadata."""


def _spec(
    url: str, store: StoreOptions, cache_dir: str | None, use_cache: bool, password: PasswordSource
) -> app.MirrorSpec:
    return app.MirrorSpec(
        url=url, store=store, cache_dir=cache_dir, use_cache=use_cache, password=password
    )


@command.command("init", cls=CairnCommand)
@store_options
@password_options
@click.argument("dest")
@click.option(
    "--encrypt",
    is_flag=True,
    help="Encrypt contents, names and the manifest under a new password.",
)
def init_command(
    store: StoreOptions,
    cache_dir: str | None,
    use_cache: bool,
    out: Output,
    password: PasswordSource,
    dest: str,
    encrypt: bool,
) -> int:
    """Make DEST (s3://BUCKET/PREFIX, s3:https://HOST/BUCKET/PREFIX or a directory) a mirror.

    \b
    Examples:
      cairn mirror init s3://my-bucket/photos
      cairn mirror init --encrypt --password-file ~/.mirror-pass s3://my-bucket/private
    """
    marker, usage = app.init(_spec(dest, store, cache_dir, use_cache, password), encrypt=encrypt)
    if out.json_mode:
        out.json(
            {
                "id": marker.id,
                "created": marker.created,
                "encrypted": encrypt,
                "store": usage,
            }
        )
    else:
        what = "encrypted mirror" if encrypt else "mirror"
        out.line(f"created {what} {marker.id[:8]} at {dest}")
        if encrypt:
            out.line("keep the password safe: without it the mirror cannot be read")
    return EXIT_OK


def _push_options(f: Any) -> Any:
    """SRC and the options of a push (push and status), turned into ``request``."""

    @functools.wraps(f)
    def wrapper(
        source: str,
        delete: bool,
        keep_deleted: int | None,
        checksum: bool,
        workers: int,
        host: str | None,
        reconcile: bool,
        **kwargs: Any,
    ) -> Any:
        request = app.PushRequest(
            source=source,
            workers=workers,
            checksum=checksum,
            delete=delete,
            keep_deleted_days=keep_deleted,
            host=host,
            reconcile=reconcile,
        )
        return f(request=request, **kwargs)

    decorated: Any = wrapper
    for option in reversed(
        [
            click.option(
                "--delete", is_flag=True, help="Delete the objects of files no longer in SRC."
            ),
            click.option(
                "--keep-deleted",
                "keep_deleted",
                type=click.IntRange(0),
                metavar="DAYS",
                help="Move the objects of deleted files to the trash; purge them after DAYS.",
            ),
            click.option(
                "--checksum", is_flag=True, help="Hash every file, even ones seen unchanged."
            ),
            click.option(
                "--workers",
                type=click.IntRange(1, 64),
                default=4,
                show_default=True,
                help="Files hashed at once.",
            ),
            click.option("--host", default=None, help="Host name the manifest records."),
            click.option(
                "--reconcile",
                is_flag=True,
                help="List the bucket: adopt objects an interrupted push sent, and send again "
                "those changed or deleted behind the manifest's back.",
            ),
        ]
    ):
        decorated = option(decorated)
    return click.argument("source", metavar="SRC")(decorated)


@command.command("push", cls=CairnCommand)
@store_options
@password_options
@_push_options
@click.argument("dest")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("-v", "--verbose", count=True, help="Name the files uploaded, copied, removed.")
def push_command(
    store: StoreOptions,
    cache_dir: str | None,
    use_cache: bool,
    out: Output,
    password: PasswordSource,
    request: app.PushRequest,
    dest: str,
    dry_run: bool,
    verbose: int,
) -> int:
    """Make the mirror DEST hold what the directory SRC holds.

    \b
    Examples:
      cairn mirror push ~/Photos s3://my-bucket/photos
      cairn mirror push --delete --limit-upload 2048 ~/Photos s3://my-bucket/photos
      cairn mirror push --keep-deleted 30 --reconcile /srv/www /mnt/usb/www-mirror
    """
    request.dry_run = dry_run
    outcome = app.push_mirror(_spec(dest, store, cache_dir, use_cache, password), request)
    return _report_push(out, outcome, verbose, dry_run)


@command.command("status", cls=CairnCommand)
@store_options
@password_options
@_push_options
@click.argument("dest")
@click.option("-v", "--verbose", count=True, help="Name the files a push would send.")
def status_command(
    store: StoreOptions,
    cache_dir: str | None,
    use_cache: bool,
    out: Output,
    password: PasswordSource,
    request: app.PushRequest,
    dest: str,
    verbose: int,
) -> int:
    """What a push of SRC to DEST would do: files, bytes, requests and their cost.

    \b
    Examples:
      cairn mirror status ~/Photos s3://my-bucket/photos
      cairn mirror status -v --delete --json ~/Photos s3://my-bucket/photos
    """
    outcome = app.status(_spec(dest, store, cache_dir, use_cache, password), request)
    return _report_push(out, outcome, verbose, dry_run=True)


def _push_json(r: app.PushResult) -> dict[str, Any]:
    # not asdict(r), which would copy the plan's every entry into a dict before dropping it
    skip = ("plan", "unreadable", "reconciled")
    doc: dict[str, Any] = {f.name: getattr(r, f.name) for f in fields(r) if f.name not in skip}
    doc["unreadable"] = [{"path": printable(u.path), "error": u.error} for u in r.unreadable]
    if (rec := r.reconciled) is not None:
        doc["reconciled"] = {
            "listed": rec.listed,
            "changed": [printable(p) for p in rec.changed],
            "missing": [printable(p) for p in rec.missing],
            "adopted": [printable(p) for p in rec.adopted],
        }
    return doc


def _report_push(out: Output, outcome: app.PushOutcome, verbose: int, dry_run: bool) -> int:
    r, plan = outcome.result, outcome.result.plan
    assert plan is not None
    code = EXIT_PARTIAL if r.unreadable else EXIT_OK
    if out.json_mode:
        doc = _push_json(r)
        doc["store"] = outcome.usage
        doc["dry_run"] = dry_run
        if dry_run:
            doc.update(
                would_upload=[printable(e.path) for e in plan.upload],
                would_copy=[printable(e.path) for e, _ in (*plan.copy, *plan.copy_after)],
                would_remove=[printable(e.path) for e in plan.remove],
            )
        if outcome.estimate is not None:
            doc["estimate"] = outcome.estimate
        out.json(doc)
        return code
    if verbose:
        for e in plan.upload:
            out.line(f"upload  {printable(e.path)}")
        for e, src in (*plan.copy, *plan.copy_after):
            out.line(f"copy    {printable(e.path)} (from {printable(src)})")
        for e in plan.remove:
            out.line(f"remove  {printable(e.path)}")
    if (rec := r.reconciled) is not None:
        for p in rec.changed[:SHOWN]:
            out.warning(f"{printable(p)}: its object was changed behind the manifest's back")
        for p in rec.missing[:SHOWN]:
            out.warning(f"{printable(p)}: its object was deleted behind the manifest's back")
        out.line(
            f"reconciled: {rec.listed} objects listed, {len(rec.changed) + len(rec.missing)} "
            f"to send again, {len(rec.adopted)} adopted"
        )
    for u in r.unreadable[:SHOWN]:
        out.warning(f"{printable(u.path)}: {u.error}")
    if len(r.unreadable) > SHOWN:
        out.warning(f"... and {len(r.unreadable) - SHOWN} more")
    if dry_run:
        copies = len(plan.copy) + len(plan.copy_after)
        out.line(
            f"would upload {len(plan.upload)} files ({format_bytes(plan.bytes_up)}), copy "
            f"{copies} on the store, rewrite the metadata of {r.metadata_only}, and "
            f"{'remove' if r.kept == 0 else 'keep'} {len(plan.remove)} objects of deleted files"
        )
        est = outcome.estimate or {}
        req = est.get("requests", {})
        line = f"requests: {req.get('put', 0)} PUT/COPY, {req.get('delete', 0)} DELETE"
        if "cost" in est:
            line += f"; about ${est['cost']:.4f} now, ${est['month']:.2f}/month to store"
            line += f" ({est['prices']})"
        out.line(line)
    else:
        state = f"generation {r.generation}" if r.committed else "nothing changed"
        out.line(
            f"{state}: {r.files} files ({format_bytes(r.bytes)}); uploaded {r.uploaded} "
            f"({format_bytes(r.uploaded_bytes)}), copied {r.copied}, metadata only "
            f"{r.metadata_only}, removed {r.removed + r.trashed}"
            + (f", {r.kept} objects of deleted files kept" if r.kept else "")
        )
    if r.unreadable:
        out.warning(f"{len(r.unreadable)} files could not be pushed as they are (exit {code})")
    out.line(store_line(outcome.usage))
    return code


@command.command("pull", cls=CairnCommand)
@store_options
@password_options
@click.argument("source", metavar="SRC")
@click.argument("dest")
@click.option("--delete", is_flag=True, help="Remove what DEST holds and the mirror does not.")
@click.option(
    "-i",
    "--include",
    "includes",
    multiple=True,
    metavar="PATTERN",
    help="Pull only matching paths (and the directories above them).",
)
@click.option("--checksum", is_flag=True, help="Hash local files rather than trust size and time.")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Downloads at once."
)
def pull_command(
    store: StoreOptions,
    cache_dir: str | None,
    use_cache: bool,
    out: Output,
    password: PasswordSource,
    source: str,
    dest: str,
    delete: bool,
    includes: tuple[str, ...],
    checksum: bool,
    workers: int,
) -> int:
    """Make the directory DEST equal to the mirror SRC (any mirror URL, or a plain
    http:// or https:// URL of a public bucket, a bucket website or a CDN in front of it).

    \b
    Examples:
      cairn mirror pull https://my-bucket.s3.amazonaws.com/photos ~/Photos
      cairn mirror pull --delete --include '/2024' s3://my-bucket/photos ~/Photos
    """
    request = app.PullRequest(
        dest=dest, delete=delete, include=list(includes), checksum=checksum, workers=workers
    )
    outcome = app.pull_mirror(_spec(source, store, cache_dir, use_cache, password), request)
    r = outcome.result
    code = EXIT_PARTIAL if r.errors else EXIT_OK
    if out.json_mode:
        doc = r.as_dict()
        doc["errors"] = [{"path": printable(p), "error": m} for p, m in r.errors]
        doc["store"] = outcome.usage
        out.json(doc)
        return code
    for path, problem in r.errors[:SHOWN]:
        out.warning(f"{printable(path)}: {problem}")
    if len(r.errors) > SHOWN:
        out.warning(f"... and {len(r.errors) - SHOWN} more")
    out.line(
        f"generation {r.generation}: downloaded {r.downloaded} files ({format_bytes(r.bytes)}), "
        f"kept {r.kept}, linked {r.linked}, removed {r.removed}"
        + (f"; {len(r.errors)} errors (exit {code})" if r.errors else "")
    )
    out.line(store_line(outcome.usage))
    return code


@command.command("verify", cls=CairnCommand)
@store_options
@password_options
@click.argument("dest")
@click.option("--read-data", is_flag=True, help="Download every object and check its hash.")
def verify_command(
    store: StoreOptions,
    cache_dir: str | None,
    use_cache: bool,
    out: Output,
    password: PasswordSource,
    dest: str,
    read_data: bool,
) -> int:
    """Check that every object of the mirror DEST is as its manifest says.

    \b
    Examples:
      cairn mirror verify s3://my-bucket/photos
      cairn mirror verify --read-data /mnt/usb/www-mirror
    """
    outcome = app.verify_mirror(_spec(dest, store, cache_dir, use_cache, password), read_data)
    r = outcome.result
    code = EXIT_FAILED if r.problems else EXIT_OK
    if out.json_mode:
        out.json(
            {
                "generation": r.generation,
                "files": r.files,
                "bytes": r.bytes,
                "bytes_read": r.bytes_read,
                "problems": [{"path": printable(p), "problem": m} for p, m in r.problems],
                "trash": [{"generation": g, "objects": n, "bytes": b} for g, n, b in r.trash],
                "old_heads": r.old_heads,
                "store": outcome.usage,
            }
        )
        return code
    for path, problem in r.problems:
        out.warning(f"{printable(path)}: {problem}")
    if r.generation is None:
        out.line("the mirror is empty: nothing pushed yet")
    else:
        what = "checked and read" if read_data else "checked"
        out.line(
            f"generation {r.generation}: {r.files} objects ({format_bytes(r.bytes)}) {what}, "
            f"{len(r.problems)} problems"
        )
        if r.trash:
            objects, size = sum(n for _, n, _ in r.trash), sum(b for _, _, b in r.trash)
            out.line(
                f"trash: {len(r.trash)} generations, {objects} objects ({format_bytes(size)}), "
                f"generations {r.trash[0][0]} to {r.trash[-1][0]}"
            )
        if r.old_heads:
            out.line(
                f"{len(r.old_heads)} old heads below generation {r.old_heads[-1] + 1}, "
                "collected at a push's next compaction"
            )
    out.line(store_line(outcome.usage))
    return code


def _mirror_connections_help() -> None:
    """--connections means objects written at once here, with the mirror's own defaults."""
    for sub in command.commands.values():
        for param in sub.params:
            if param.name == "connections" and isinstance(param, click.Option):
                param.help = "Objects written at once (default 8 on S3, 4 for a local directory)."


_mirror_connections_help()
