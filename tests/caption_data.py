"""Caption sources as users have them, generated: a folder of images with a caption file, and WebDataset shards."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

from PIL import Image

COLOURS = ["红色", "绿色", "蓝色", "黄色", "紫色", "青色"]
RGB = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 30), (150, 30, 180), (30, 200, 200)]


def jpeg(i: int, size: tuple[int, int] = (48, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, RGB[i % len(RGB)]).save(buf, format="JPEG")
    return buf.getvalue()


def caption(i: int) -> str:
    return f"一块{COLOURS[i % len(COLOURS)]}的方块，编号{i}。"


def write_caption_folder(folder: Path, n: int = 12, fmt: str = "jsonl", header=("image", "caption")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"img{i}.jpg").write_bytes(jpeg(i))
    rows = [(f"img{i}.jpg", caption(i)) for i in range(n)]
    if fmt == "jsonl":
        lines = [json.dumps({header[0]: image, header[1]: text}, ensure_ascii=False) for image, text in rows]
        (folder / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        with open(folder / f"captions.{fmt}", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",")
            writer.writerow(header)
            writer.writerows(rows)
    return folder


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, shards: int = 3, per_shard: int = 4, json_every: int = 2) -> list[Path]:
    """`shards` tar files of `per_shard` samples each, keys `s{shard}-{i}`; every `json_every`-th caption is a
    .json member (the rest .txt), and every sample also carries a .cls member that readers must pass over."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        path = folder / f"{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                n, key = s * per_shard + i, f"s{s}-{i:03d}"
                add(tar, f"{key}.jpg", jpeg(n))
                if json_every and i % json_every == 0:
                    add(tar, f"{key}.json", json.dumps({"caption": caption(n)}, ensure_ascii=False).encode())
                else:
                    add(tar, f"{key}.txt", caption(n).encode())
                add(tar, f"{key}.cls", str(n).encode())
        paths.append(path)
    return paths
