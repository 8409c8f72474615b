"""WebDataset tar shards of image-caption pairs, streamed member by member: nothing is extracted to disk and no
shard is ever held in memory whole (the standard layout for caption sets of millions of images).

A spec names the shards as a brace list `shards/{000000..000099}.tar` (also `{a,b}`), a glob `shards/*.tar`, one
`.tar` file, or a folder holding `*.tar` files; `.tar.gz` / `.tgz` are read the same way. In each shard the
members of one sample are adjacent and share a key: `{key}.jpg|jpeg|png|webp` with `{key}.txt` (the caption) or
`{key}.json` (an object whose "caption" or "text" field is the caption); the key is the member name up to the first
dot of its last path part, as WebDataset has it. Other members (`.cls`, `.npy`, ...) are passed over unread.

Bad input is counted, never fatal: a key without image or caption ("unpaired key"), an oversized or non-regular
member, bad UTF-8 or JSON, a corrupt image, and a shard that is not a tar or breaks off midway ("shard failed to
read": the samples before the break are kept).

Sharding over ranks and DataLoader workers, each reader getting the same share of samples: of F shard files and n
readers, the first F - F % n are dealt out whole (every n-th); the last F % n (all of them when F < n) are shared by
sample. Each shared file's samples fall into n slices by index (index % n), and each reader takes F % n consecutive
slices of them all, so it opens at most two shared files, and 3 shards over 2 readers give each 1.5 shards' worth,
not 2 and 1 (the one-shard reader's samples would be seen twice as often in a run that cycles the readers). A count
hold-out (`holdout: 64`) is the first 64 samples of the first shard; a fraction hold-out is a stable hash of (seed,
shard name, sample index).
"""

from __future__ import annotations

import glob
import json
import os
import re
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from smvl.data.samples.images import MAX_FILE_BYTES
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog, TooManySkipped
from smvl.data.sources.captions import caption_sample, prompt_for
from smvl.data.sources.split import in_split
from smvl.errors import UserError

SHARD_SUFFIX = re.compile(r"\.(tar|tar\.gz|tgz)$")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTS = ("txt", "json")
MAX_CAPTION_BYTES = 2**20
MAX_SHARDS = 1_000_000
_BRACE = re.compile(r"\{([^{}]*)\}")


def is_shard_spec(spec: str) -> bool:
    path = Path(spec)
    if path.is_dir():
        return bool(_folder_shards(path))
    return bool(SHARD_SUFFIX.search(spec))


def expand_braces(text: str) -> list[str]:
    """`a/{00..02}.tar` -> a/00.tar, a/01.tar, a/02.tar (zero padding kept); `{x,y}` -> x, y; nested groups too."""
    match = _BRACE.search(text)
    if not match:
        return [text]
    body = match.group(1)
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        first, last = numbers.groups()
        if int(last) < int(first) or int(last) - int(first) >= MAX_SHARDS:
            raise UserError(f"shard range {{{body}}} must count up, over at most {MAX_SHARDS:,} shards")
        options = [str(i).zfill(len(first)) for i in range(int(first), int(last) + 1)]
    elif "," in body:
        options = body.split(",")
    else:
        raise UserError(f"cannot expand {{{body}}} in {text}: use {{000..099}} or {{a,b}}")
    head, tail = text[: match.start()], text[match.end():]
    return [name for option in options for name in expand_braces(head + option + tail)]


def _folder_shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if SHARD_SUFFIX.search(p.name))


def shard_files(spec: str) -> list[Path]:
    """The shard files a spec names, in order; a named shard that does not exist is an error now, not a skip later:
    a typo in a range would otherwise silently train on part of the data."""
    path = Path(spec)
    if path.is_dir():
        return _folder_shards(path)
    files = []
    for name in expand_braces(spec):
        if glob.has_magic(name):
            files += sorted(Path(p) for p in glob.glob(name))
        elif not Path(name).exists():
            raise FileNotFoundError(f"shard {name} does not exist")
        else:
            files.append(Path(name))
    if not files:
        raise UserError(f"{spec} matches no shard files")
    return files


def _split_key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, what: str) -> bytes:
    if not member.isfile():
        raise BadSample("not a regular file", member.name)
    if member.size > limit:
        raise BadSample(f"{what} too large", f"{member.name}: {member.size:,} bytes (limit {limit:,})")
    return tar.extractfile(member).read()


def _caption(ext: str, data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSample("invalid UTF-8", f"{name}: byte {exc.start}") from exc
    if ext == "txt":
        return text
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadSample("invalid JSON", f"{name}: {exc}") from exc
    caption = record.get("caption", record.get("text")) if isinstance(record, dict) else None
    if not isinstance(caption, str):
        raise BadSample("missing caption", f"{name} has no string caption or text field")
    return caption


def _groups(tar: tarfile.TarFile) -> Iterator[tuple[str, Iterator[tuple[tarfile.TarInfo, str]]]]:
    """(key, its members) for each run of adjacent members sharing a key; a member's data can only be read while
    it is the current one, so the caller reads (or passes over) each member as it comes."""
    pending = None
    members = iter(tar)

    def run(first: tarfile.TarInfo, key: str):
        nonlocal pending
        yield first, _split_key(first.name)[1]
        for member in members:
            tar.members = []  # TarFile keeps every header it has seen: millions in a large shard
            if member.isdir():
                continue
            next_key, ext = _split_key(member.name)
            if next_key != key:
                pending = member
                return
            yield member, ext
        pending = None

    for member in members:
        tar.members = []
        if member.isdir():
            continue
        pending = member
        while pending is not None:
            first, pending = pending, None
            key = _split_key(first.name)[0]
            group = run(first, key)
            yield key, group
            for _ in group:  # the caller skipped the rest of this sample: pass over it to find the next key
                pass


def _pair(tar, group, sid: str) -> tuple[bytes, str]:
    image = caption = problem = None
    for member, ext in group:
        try:
            if ext in IMAGE_EXTS and image is None:
                image = _read_member(tar, member, MAX_FILE_BYTES, "image file")
            elif ext in CAPTION_EXTS and caption is None:
                caption = _caption(ext, _read_member(tar, member, MAX_CAPTION_BYTES, "caption"), member.name)
        except BadSample as exc:
            problem = problem or exc  # read on: the group's other members must be passed over anyway
    if problem is not None:
        raise problem
    if image is None or caption is None:
        raise BadSample("unpaired key", f"{sid} has no {'image' if image is None else 'caption'}")
    return image, caption


class _Plan:
    """Which shard files this reader opens and which samples in them it keeps (see the module docstring)."""

    def __init__(self, files: list[Path], split: str, holdout: float, seed: int, shard: tuple[int, int]):
        self.split, self.holdout, self.seed = split, holdout, seed
        self.position, self.stride = shard
        self.whole = len(files) - len(files) % self.stride  # dealt out whole; the rest are shared by sample
        self.shared = len(files) - self.whole
        self.files = [(n, f) for n, f in enumerate(files)
                      if (n % self.stride == self.position if n < self.whole else self._touches(n - self.whole))]

    def _slice(self, shared_no: int, index: int) -> int:
        """Shared file j's samples fall in `stride` slices by index; slice j*stride + index % stride of all
        `shared * stride`, taken `shared` at a time in order, so each reader gets the same share and opens at most
        two shared files."""
        return shared_no * self.stride + index % self.stride

    def _touches(self, shared_no: int) -> bool:
        first, last = self._slice(shared_no, 0), self._slice(shared_no, self.stride - 1)
        return first // self.shared <= self.position <= last // self.shared

    def is_test(self, file_no: int, name: str, index: int) -> bool:
        if self.holdout >= 1:
            return file_no == 0 and index < self.holdout
        return in_split(name, index, "test", self.holdout, self.seed)

    def keep(self, file_no: int, name: str, index: int) -> bool:
        if self.is_test(file_no, name, index) != (self.split == "test"):
            return False
        if file_no < self.whole:
            return True
        return self._slice(file_no - self.whole, index) // self.shared == self.position

    def done(self, file_no: int, index: int) -> bool:
        """A count hold-out's test split ends inside the first shard: the other shards are never opened."""
        return self.split == "test" and self.holdout >= 1 and (file_no > 0 or index >= self.holdout)


def _open_shard(path: Path):
    """The shard as a file object, refusing FIFOs and devices before reading (a FIFO would block forever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadSample("not a regular file", str(path))
    return os.fdopen(fd, "rb")


def _shard_samples(file_no: int, path: Path, plan: _Plan, seed: int, skips: SkipLog,
                   lazy: bool) -> Iterator[Sample]:
    try:
        with _open_shard(path) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for index, (key, group) in enumerate(_groups(tar)):
                if plan.done(file_no, index):
                    return
                if not plan.keep(file_no, path.name, index):
                    continue  # its members are passed over unread
                sid = f"{path.name}:{key}"
                try:
                    image, caption = _pair(tar, group, sid)
                    sample = caption_sample(image, caption, sid, f"shards:{path.parent.name}",
                                            prompt_for(seed, path.name, index), lazy=lazy)
                except BadSample as exc:
                    skips.skip(sid, exc.reason)
                    continue
                skips.ok()
                yield sample
    except TooManySkipped:
        raise
    except BadSample as exc:
        skips.skip(path.name, exc.reason)
    except Exception as exc:  # noqa: BLE001 - tarfile, gzip, zlib and the OS raise many types; one shard is not fatal
        skips.skip(f"{path.name} ({type(exc).__name__}: {str(exc)[:160]})", "shard failed to read")


def shard_samples(spec: str, split: str = "train", holdout: float = 64, seed: int = 0, skips: SkipLog | None = None,
                  shard: tuple[int, int] = (0, 1), lazy: bool = False) -> Iterator[Sample]:
    skips = skips if skips is not None else SkipLog()
    plan = _Plan(shard_files(spec), split, holdout, seed, shard)
    for file_no, path in plan.files:
        if plan.done(file_no, 0):
            return
        yield from _shard_samples(file_no, path, plan, seed, skips, lazy)
