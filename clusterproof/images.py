"""ImageCatalogue: logical image names used by fixtures -> image references."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from clusterproof.errors import ImageMapError, ImageNotFound

PACKAGED_CATALOGUE = Path(__file__).parent / "data" / "images.yaml"


@dataclass(frozen=True)
class ImageEntry:
    name: str
    ref: str
    offline: str | None = None  # a reference, or the name of another entry


class ImageCatalogue:
    def __init__(self, entries: Mapping[str, ImageEntry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def load(cls, path: Path = PACKAGED_CATALOGUE, image_map: Path | None = None) -> ImageCatalogue:
        catalogue = cls(parse_entries(_read_yaml(path), path))
        return catalogue.overridden(parse_image_map(image_map)) if image_map else catalogue

    def overridden(self, overrides: Mapping[str, ImageEntry]) -> ImageCatalogue:
        """A new catalogue where each override replaces the whole entry (ref and offline)."""
        return ImageCatalogue({**self._entries, **overrides})

    def ref(self, name: str, *, offline: bool = False, where: str = "") -> str:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries))
            place = f" in {where}" if where else ""
            raise ImageNotFound(
                f"unknown image {name!r}{place}: not in the image catalogue (known: {known}); "
                "add it to clusterproof/data/images.yaml or map it with --image-map"
            )
        if offline and entry.offline:
            alias = self._entries.get(entry.offline)
            return alias.ref if alias else entry.offline
        return entry.ref

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def entries(self) -> dict[str, ImageEntry]:
        return dict(self._entries)


def parse_entries(doc: object, source: Path | str) -> dict[str, ImageEntry]:
    if not isinstance(doc, dict):
        raise ImageMapError(f"{source}: expected a mapping of image name -> reference")
    entries = {}
    for name, value in doc.items():
        if isinstance(value, str):
            entries[str(name)] = ImageEntry(str(name), value)
        elif isinstance(value, dict) and isinstance(value.get("ref"), str):
            offline = value.get("offline")
            entries[str(name)] = ImageEntry(str(name), value["ref"], str(offline) if offline else None)
        else:
            raise ImageMapError(f"{source}: image {name!r} needs a reference (or `ref:`)")
    return entries


def parse_image_map(path: Path) -> dict[str, ImageEntry]:
    """YAML (`name: ref` or `name: {ref:, offline:}`) or plain `name=ref` lines, # comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImageMapError(f"--image-map {path}: not UTF-8 text") from None
    except OSError as e:
        raise ImageMapError(f"--image-map {path}: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict):
        return parse_entries(doc, path)
    entries = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, ref = (part.strip() for part in line.partition("="))
        if not sep or not name or not ref:
            raise ImageMapError(f"--image-map {path}:{number}: expected `name=ref`, got {raw!r}")
        entries[name] = ImageEntry(name, ref)
    return entries


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ImageMapError(f"image catalogue {path}: {type(e).__name__}") from None
