"""Output paths of command-line options: a file option's folder is made on demand.

Every option that writes a file goes through :func:`output_file` (or
:func:`output_dir` for options that name a folder) before the command does any
work, so a run never ends in a ``FileNotFoundError`` after minutes of simulation,
and a path that cannot be written is one line naming the option, exit 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def _fail(option: str, path: Path, reason: str) -> typer.BadParameter:
    return typer.BadParameter(f"cannot write {path}: {reason}", param_hint=option)


def _make_folder(option: str, path: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _fail(option, path, f"{folder} is a file, not a folder") from None
    except NotADirectoryError:
        raise _fail(option, path, "a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise _fail(option, path, exc.strerror or str(exc)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _fail(option, path, f"no permission to write in {folder}")


def output_file(path: Path | None, option: str) -> Path | None:
    """Make ``path``'s folder; raise a one-line ``BadParameter`` if it cannot be written."""
    if path is None:
        return None
    if str(path).strip() == "":
        raise typer.BadParameter("give a file name", param_hint=option)
    if path.is_dir():
        raise _fail(option, path, "it is a folder; give a file name")
    _make_folder(option, path, path.parent if str(path.parent) else Path("."))
    if path.exists() and not os.access(path, os.W_OK):
        raise _fail(option, path, "no permission to overwrite it")
    return path


def output_dir(path: Path | None, option: str) -> Path | None:
    """Make the folder ``path``; raise a one-line ``BadParameter`` if it cannot be."""
    if path is None:
        return None
    if str(path).strip() == "":
        raise typer.BadParameter("give a folder name", param_hint=option)
    if path.exists() and not path.is_dir():
        raise _fail(option, path, "it is a file, not a folder")
    _make_folder(option, path, path)
    return path
