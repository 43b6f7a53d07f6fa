"""Which folders a sparse checkout in cone mode keeps to leave out only the status folder."""

from __future__ import annotations

from collections.abc import Callable

# The other way to say it: patterns ("everything but the status folder").
PATTERNS = "patterns"


def cone_folders(
    status_path: str, folders_in: Callable[[str], list[str]]
) -> tuple[str, ...] | None:
    """Every folder beside the status folder and beside each folder on the way to it
    (cone mode keeps the files of those on the way by itself), sorted; None when a name
    cannot be given to `git sparse-checkout set --cone` as it is. `folders_in(folder)`:
    the names of the folders in a folder of the revision ('' is the root)."""
    parts = status_path.split("/")
    cones: list[str] = []
    for depth in range(len(parts)):
        folder = "/".join(parts[:depth])
        on_the_way = parts[depth]
        for name in folders_in(folder):
            if name == on_the_way:
                continue
            if not _plain_cone(name):
                return None
            cones.append(f"{folder}/{name}" if folder else name)
    return tuple(sorted(cones))


def _plain_cone(name: str) -> bool:
    """A folder name that means itself as a cone (git escapes glob characters in cone
    mode, but not every version did) and as an argument."""
    return (
        bool(name)
        and not name.startswith(("-", " "))
        and not any(character in name for character in "*?[]!\\#\n\r\t")
    )
