"""Earlier demos, kept: each rerun moves the previous state aside, and any of it can come back.

The demo replays one scripted story; a second run in the same home would otherwise meet the
first run's sensor run keys, cooldowns and registry and tell a different story. So a run first
moves the registry, the alert outbox and (when it lives in the home) the Dagster history into
``<home>/archive/<UTC time>/``, which sorts oldest first. Nothing is deleted: restoring an
archive first archives what is there now. The artifact store's objects stay where they are:
they are content-addressed, so the replay reuses the same bytes. Its refs (which version of
each partition is current) are state like the registry and move with it when the store is a
local folder: a check that reads earlier partitions must not find the previous demo's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from upath import UPath

from aiops_assets.core.store import local_path
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers

# Where each archived entry came from, so a restore puts it back where it was.
MANIFEST = "archived.json"
STAMP_FORMAT = "%Y%m%dT%H%M%S"
LATEST = "latest"
_SQLITE_PREFIX = "sqlite:///"


def archive_root(settings: PipelineSettings) -> Path:
    return settings.home.absolute() / "archive"


def archive_previous_demo(
    settings: PipelineSettings, dagster_home: Path | None = None
) -> Path | None:
    """Move an earlier demo's registry, alert outbox and (when it lives in the demo's home) its
    Dagster instance history into a new ``<home>/archive/<time>/``; return it, or ``None`` when
    there was nothing to keep.

    Call it only once the demo's settings are known to be good (``validate_demo_settings``):
    a refused demo must leave the working instance where it was.
    """
    movable = _movable(settings, dagster_home)
    if not movable:
        return None
    close_ledgers()
    archive = _new_archive_folder(archive_root(settings))
    for source, name in movable:
        target = archive / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
    _write_manifest(archive, {name: str(source.absolute()) for source, name in movable})
    return archive


def list_demo_archives(settings: PipelineSettings) -> list[Path]:
    """The archives in this home, oldest first (their names are UTC times)."""
    root = archive_root(settings)
    if not root.is_dir():
        return []
    return sorted(
        (folder for folder in root.iterdir() if folder.is_dir() and any(folder.iterdir())),
        key=lambda folder: folder.name,
    )


def restore_demo_archive(settings: PipelineSettings, name: str | None = None) -> Path:
    """Put archive ``name`` (``None`` or ``"latest"``: the newest) back in place; return it.

    What is in place now is archived first, so a restore loses nothing and can itself be undone
    by restoring the archive it made. Raises ``ValueError`` before touching anything when the
    archive does not exist or something in the way would not be archived.
    """
    archive = _find_archive(settings, name)
    entries = _archived_entries(settings, archive)
    dagster_home = _dagster_home_of(entries)
    in_the_way = {source.absolute() for source, _ in _movable(settings, dagster_home)}
    blocked = [
        str(target) for target in entries.values() if target.exists() and target not in in_the_way
    ]
    if blocked:
        raise ValueError(
            f"cannot restore {archive.name}: {', '.join(blocked)} exist(s) and would be "
            "overwritten; move them away first"
        )
    archive_previous_demo(settings, dagster_home)
    close_ledgers()
    for name_in_archive, target in entries.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        (archive / name_in_archive).rename(target)
    _remove_emptied(archive)
    return archive


def _movable(settings: PipelineSettings, dagster_home: Path | None) -> list[tuple[Path, str]]:
    """What a demo leaves behind, with its name inside an archive."""
    movable: list[tuple[Path, str]] = []
    ledger_file = _ledger_file(settings)
    if ledger_file is not None and ledger_file.exists():
        movable.append((ledger_file, ledger_file.name))
    if settings.alert_outbox.exists():
        movable.append((settings.alert_outbox, settings.alert_outbox.name))
    witness = settings.audit_witness_file
    # The witness vouches for the archived ledger's heads; one kept outside the home is the
    # operator's, and stays where it is.
    if witness.exists() and witness.is_relative_to(settings.home.absolute()):
        movable.append((witness, witness.name))
    refs = _local_store_refs(settings)
    if refs is not None and refs.is_dir():
        movable.append((refs, "store/refs"))
    home = settings.home.absolute()
    if (
        dagster_home is not None
        and dagster_home.absolute().is_relative_to(home)
        and dagster_home.is_dir()
    ):
        movable += [
            (child, f"dagster_home/{child.name}")
            for child in sorted(dagster_home.iterdir())
            if child.name != "dagster.yaml"
        ]
    return movable


def _local_store_refs(settings: PipelineSettings) -> Path | None:
    root = local_path(UPath(settings.store_root))
    return None if root is None else root.absolute() / "refs"


def _ledger_file(settings: PipelineSettings) -> Path | None:
    url = settings.ledger_url
    return Path(url[len(_SQLITE_PREFIX) :]) if url.startswith(_SQLITE_PREFIX) else None


def _new_archive_folder(root: Path) -> Path:
    """``<root>/<UTC time>``, with ``-02``, ``-03``... when a folder of that second exists."""
    stamp = time.strftime(STAMP_FORMAT, time.gmtime())
    archive, suffix = root / stamp, 1
    while archive.exists():
        suffix += 1
        archive = root / f"{stamp}-{suffix:02d}"
    archive.mkdir(parents=True)
    return archive


def _write_manifest(archive: Path, origins: dict[str, str]) -> None:
    """Written to a temporary name, synced, then renamed: a crash leaves no half manifest."""
    temporary = archive / f".{MANIFEST}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump({"origins": origins}, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.rename(archive / MANIFEST)


def _find_archive(settings: PipelineSettings, name: str | None) -> Path:
    archives = list_demo_archives(settings)
    if not archives:
        raise ValueError(f"no demo archive in {archive_root(settings)}: nothing to restore")
    if name is None or name == LATEST:
        return archives[-1]
    for archive in archives:
        if archive.name == name:
            return archive
    names = ", ".join(archive.name for archive in archives)
    raise ValueError(f"no demo archive named {name!r}; there are: {names} (or {LATEST!r})")


def _archived_entries(settings: PipelineSettings, archive: Path) -> dict[str, Path]:
    """Each archived entry and where it goes back to: as recorded, or (for an archive made
    before archives recorded it) where this home keeps it."""
    manifest = archive / MANIFEST
    if manifest.is_file():
        origins = json.loads(manifest.read_text(encoding="utf-8"))["origins"]
        return {name: Path(origin) for name, origin in sorted(origins.items())}
    defaults = {settings.alert_outbox.name: settings.alert_outbox}
    ledger_file = _ledger_file(settings)
    if ledger_file is not None:
        defaults[ledger_file.name] = ledger_file.absolute()
    entries = {
        entry.name: defaults[entry.name] for entry in archive.iterdir() if entry.name in defaults
    }
    history = archive / "dagster_home"
    if history.is_dir():
        entries |= {
            f"dagster_home/{child.name}": settings.dagster_home / child.name
            for child in sorted(history.iterdir())
        }
    return entries


def _dagster_home_of(entries: dict[str, Path]) -> Path | None:
    """The instance folder the archive's Dagster history goes back into; ``None`` when it holds
    none (its instance lived outside the home), so the instance there now stays."""
    for name, target in entries.items():
        if name.startswith("dagster_home/"):
            return target.parent
    return None


def _remove_emptied(archive: Path) -> None:
    (archive / MANIFEST).unlink(missing_ok=True)
    for folder in sorted(archive.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if not any(archive.iterdir()):
        archive.rmdir()
