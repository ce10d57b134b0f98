"""Copying snapshots between repositories (``cairn copy``): see ops/copy/run.py."""

from cairn.ops.copy.idmap import IdMap
from cairn.ops.copy.run import CopiedSnapshot, Copier, CopyTotals, copied_from, present

__all__ = ["CopiedSnapshot", "Copier", "CopyTotals", "IdMap", "copied_from", "present"]
