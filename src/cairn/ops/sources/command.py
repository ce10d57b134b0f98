"""Any command: its standard output becomes one file; a non-zero exit fails the backup."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.ops.sources.stream import CommandSource, StreamItem, stream_path


@dataclass(frozen=True)
class CommandStreamSource:
    command: tuple[str, ...]  # the program and its arguments, run without a shell
    filename: str

    kind = "command"

    def streams(self) -> list[StreamItem]:
        return [StreamItem(stream_path(self.filename), CommandSource(self.command))]
