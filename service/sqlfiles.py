"""Loads the SQL that ships inside the package: migrations and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(?P<name>\w+)\s*$", re.MULTILINE)
_REPEAT = re.compile(r"\A--\s*migrate:\s*repeat\s*$", re.MULTILINE)


def _sql_dir() -> resources.abc.Traversable:
    return resources.files("sql")


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def repeated(self) -> bool:
        """A file whose first line is `-- migrate: repeat`: one statement returning a boolean, run
        in a transaction of its own again and again while it returns true (a batched backfill)."""
        return _REPEAT.match(self.sql) is not None


def migrations() -> list[Migration]:
    """The files of sql/migrations, in the order of their names (0001_init.sql, ...)."""
    folder = _sql_dir() / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text("utf-8")) for f in files]


class Queries:
    """Named blocks of one sql/queries file: `-- name: get_user` up to the next name."""

    def __init__(self, text: str) -> None:
        self._sql: dict[str, str] = {}
        marks = list(_NAME.finditer(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            end = following.start() if following else len(text)
            self._sql[mark["name"]] = text[mark.end() : end].strip().rstrip(";")

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._sql)


@cache
def queries(resource: str) -> Queries:
    """The named queries of sql/queries/<resource>.sql, parsed once per process."""
    return Queries((_sql_dir() / "queries" / f"{resource}.sql").read_text("utf-8"))
