"""The file connector: one FINRA weekly file, or a directory whose files are parts of one week."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from django.conf import settings

from otc.errors import BadSourceFile
from otc.parser import SourceLine, read_blocks, read_file

SUFFIXES = (".csv", ".txt", ".psv")
T = TypeVar("T")


def resolve_data_path(path: str) -> Path:
    """`path` resolved against `SPINE_OTC_DATA_DIR`; ValueError if it points outside it.

    Params come from API clients too, so a path may only name files under the data directory.
    """
    root = Path(settings.SPINE_OTC_DATA_DIR).resolve()
    resolved = (root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"path must be inside the OTC data directory ({root.name}/)")
    return resolved


class FileSource:
    """Lines of a local file, or of every `.csv`/`.txt`/`.psv` file of a directory in name order."""

    kind = "file"

    def __init__(self, path: str) -> None:
        self.path = path

    def files(self) -> list[Path]:
        try:
            resolved = resolve_data_path(self.path)
        except ValueError as exc:
            raise BadSourceFile(str(exc)) from None
        if resolved.is_file():
            return [resolved]
        if resolved.is_dir():
            parts = sorted(
                p for p in resolved.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            if not parts:
                raise BadSourceFile(f"{self.path}: the directory has no {'/'.join(SUFFIXES)} file.")
            return parts
        raise BadSourceFile(f"{self.path}: no such file or directory.")

    def fingerprint(self) -> tuple:
        """What changes when a file of the source is rewritten or replaced (name, inode, size,
        modification time): an ingest reads the source twice and compares this around it."""
        return tuple(
            (p.name, st.st_ino, st.st_size, st.st_mtime_ns)
            for p in self.files()
            for st in [p.stat()]
        )

    def lines(self) -> Iterator[SourceLine]:
        for _, line in self._each_file(read_file):
            yield line

    def blocks(self) -> Iterator[tuple[str, int, bytes]]:
        """The files' bytes as received, in blocks of whole lines (`otc.parser.read_blocks`)."""
        for name, (first_line, data) in self._each_file(read_blocks):
            yield name, first_line, data

    def _each_file(self, read: Callable[[BinaryIO, str], Iterator[T]]) -> Iterator[tuple[str, T]]:
        """What `read(stream, name)` yields from each file in turn, with the file's name."""
        for part in self.files():
            try:
                with part.open("rb") as stream:
                    for item in read(stream, part.name):
                        yield part.name, item
            except OSError as exc:
                raise BadSourceFile(f"{part.name}: cannot be read: {exc.strerror}") from exc
