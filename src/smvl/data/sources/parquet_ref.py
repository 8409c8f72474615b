"""An image referenced by its place in a parquet file: `{"parquet": path, "row": n, "index": k}`, the k-th image of
row n (counted from 0 over the whole file) of a the_cauldron-shaped file (an `images` column of {bytes, path}).

Translated JSONL points at the source's images this way instead of copying them (the_cauldron is 169 GB). The
reference is resolved to the image's bytes when its JSONL record is read, so training's shuffle buffer holds bytes,
as it does for the_cauldron itself. Only the `images` column of the row's row group is read; the last few row groups
are kept (`_CACHE`), so records written in file order cost one read per row group, not one per record.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path

from smvl.data.samples.sample import BadSample

_CACHE: OrderedDict[tuple[str, int], list] = OrderedDict()
CACHED_ROW_GROUPS = 64  # one per subset for an interleaved read of the_cauldron's 50 subsets
_STARTS: dict[str, list[int]] = {}


def is_parquet_ref(value) -> bool:
    return isinstance(value, dict) and "parquet" in value


def _row_group_starts(path: str) -> list[int]:
    if path not in _STARTS:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        starts = [0]
        for g in range(meta.num_row_groups):
            starts.append(starts[-1] + meta.row_group(g).num_rows)
        _STARTS[path] = starts
    return _STARTS[path]


def _images_of_group(path: str, group: int) -> list:
    key = (path, group)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    import pyarrow.parquet as pq

    column = pq.ParquetFile(path).read_row_group(group, columns=["images"]).column("images").to_pylist()
    _CACHE[key] = column
    while len(_CACHE) > CACHED_ROW_GROUPS:
        _CACHE.popitem(last=False)
    return column


def resolve_parquet_ref(ref: dict, base_dir: Path | None) -> dict:
    """The referenced image as {bytes, path} (what `load_image` takes), or BadSample."""
    row, index = ref.get("row"), ref.get("index", 0)
    if not isinstance(row, int) or not isinstance(index, int) or row < 0 or index < 0:
        raise BadSample("bad image reference", f"{ref}: row and index must be integers >= 0")
    path = Path(str(ref["parquet"]))
    path = base_dir / path if base_dir is not None and not path.is_absolute() else path
    if not path.is_file():
        raise BadSample("missing image file", str(path))
    try:
        starts = _row_group_starts(str(path))
        if row >= starts[-1]:
            raise BadSample("bad image reference", f"{path} has {starts[-1]} rows, not row {row}")
        group = bisect.bisect_right(starts, row) - 1
        images = _images_of_group(str(path), group)[row - starts[group]] or []
    except BadSample:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a broken file
        raise BadSample("unreadable image file", f"{path}: {type(exc).__name__}: {exc}") from exc
    if index >= len(images):
        raise BadSample("bad image reference", f"{path} row {row} has {len(images)} images, not image {index}")
    image = images[index]
    return image if isinstance(image, dict) else {"bytes": image, "path": None}
