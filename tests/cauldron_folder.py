"""A generated the_cauldron folder with the real schema (parquet as `datasets` writes it, `Image` features in its
metadata) and the real variety: one- and multi-image rows, a 1700x2200 JPEG scan, charts, photos, multiple choice,
numeric and yes/no answers, multi-turn rows and a few corrupt images. Subset names are real ones, so the
per-subset metrics are the real ones too."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

SIZES = {"ai2d": 30, "chartqa": 40, "cocoqa": 40, "docvqa": 12, "mimic_cgd": 12, "nlvr2": 20, "vqav2": 60}
CORRUPT = {"vqav2": 2, "cocoqa": 1}  # rows whose image bytes do not decode: 3 of 214, under the 5% stop
# mimic_cgd's 12 rows are two files of 6 around a third cut short mid-download: its rows are lost and counted (as
# many as the subset's other files hold on average), the files after it are still read. 3 + 6 of 220: under 5%.
TRUNCATED = {"mimic_cgd": 6}


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=85) if fmt == "JPEG" else image.save(buf, format=fmt)
    return buf.getvalue()


def scan(rng: random.Random) -> bytes:
    """A 1700x2200 document page: the the_cauldron size that costs 16 tiles + a global image."""
    page = Image.new("RGB", (1700, 2200), (250, 250, 247))
    draw = ImageDraw.Draw(page)
    for y in range(150, 2050, 48):
        draw.rectangle([150, y, 150 + rng.randrange(600, 1400), y + 18], fill=(30, 30, 30))
    return _encode(page, "JPEG")


def picture(rng: random.Random, size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.ellipse([x, y, x + size[0] // 5, y + size[1] // 5], fill=tuple(rng.randrange(256) for _ in range(3)))
    return _encode(image, fmt)


def _turn(user: str, answer: str, source: str) -> dict:
    return {"user": user, "assistant": answer, "source": source}


def rows_of(subset: str, n: int, rng: random.Random) -> list[dict]:
    photos = [picture(rng, (640, 480)) for _ in range(4)]
    page = scan(rng) if subset == "docvqa" else None
    rows = []
    for i in range(n):
        if subset == "ai2d":
            images = [picture(rng, (800, 600), "PNG")]
            texts = [_turn("Question: Which label marks the sun?\nChoices:\nA. A\nB. B\nC. C\nD. D\nAnswer with the "
                           "letter.", f"Answer: {'ABCD'[i % 4]}", "ai2d")]
        elif subset == "chartqa":
            images = [picture(rng, (900, 700), "PNG")]
            texts = [_turn("What is the value of the highest bar?", f"{rng.randrange(1, 500) / 10}", "chartqa")]
        elif subset == "docvqa":
            images = [page]
            texts = [_turn("What is the title of the document?", "ANNUAL REPORT", "docvqa")]
        elif subset == "nlvr2":
            images = [photos[i % 4], photos[(i + 1) % 4]]
            texts = [_turn("The left image contains exactly two animals. True or False?", rng.choice(["True", "False"]),
                           "nlvr2")]
        elif subset == "mimic_cgd":
            images = [picture(rng, (400, 300)) for _ in range(3 + i % 2)]
            texts = [_turn("What differs between these pictures?", "The colour of the circles.", "mimic_cgd"),
                     _turn("Which picture is brightest?", f"Picture {1 + i % 3}.", "mimic_cgd")]
        elif subset == "vqav2":
            images = [photos[i % 4]]
            texts = [_turn("How many objects are there?", str(1 + i % 5), "vqav2"),
                     _turn("Is it sunny?", rng.choice(["yes", "no"]), "vqav2")][: 1 + i % 2]
        else:
            images = [photos[i % 4]]
            texts = [_turn("What colour is the largest circle?", rng.choice(["red", "blue", "green"]), subset)]
        rows.append({"images": images, "texts": texts})
    for r in rows[5: 5 + CORRUPT.get(subset, 0)]:
        r["images"] = [b"\xff\xd8\xff\xe0 truncated jpeg"]
    return rows


def write_cauldron(root: Path, seed: int = 0) -> Path:
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    text = {k: Value("string") for k in ("user", "assistant", "source")}
    features = Features({"images": List(ImageFeature()), "texts": List(text)})
    rng = random.Random(seed)
    for subset, n in SIZES.items():
        rows = [{"images": [{"bytes": b, "path": None} for b in r["images"]], "texts": r["texts"]}
                for r in rows_of(subset, n, rng)]
        (root / subset).mkdir(parents=True)
        if subset not in TRUNCATED:
            Dataset.from_list(rows, features=features).to_parquet(str(root / subset / "train-00000-of-00001.parquet"))
            continue
        half = len(rows) // 2
        for k, part in ((0, rows[:half]), (1, rows[:half]), (2, rows[half:])):
            Dataset.from_list(part, features=features).to_parquet(str(root / subset / f"train-0000{k}-of-00003.parquet"))
        cut = root / subset / "train-00001-of-00003.parquet"
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return root


def subset_rows(root: Path, subset: str) -> list[dict]:
    """A subset's rows in reading order, from the files that can be read (the row indices sample ids carry)."""
    import pyarrow.parquet as pq

    rows = []
    for file in sorted((root / subset).glob("*.parquet")):
        try:
            rows += pq.read_table(file).to_pylist()
        except Exception:  # noqa: BLE001 - the file cut short (TRUNCATED): readers leave it out
            pass
    return rows


def write_text_only(path: Path, n: int = 60) -> Path:
    lines = [{"messages": [{"role": "user", "content": f"用一句话介绍数字{i}。"},
                           {"role": "assistant", "content": f"{i}是一个整数。"}]} for i in range(n)]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return path


def write_eval_file(folder: Path) -> Path:
    """Held-out questions in our JSONL format for evaluation during training: two with images (one and two; each
    image costs 13-17 tiles at real width, so the rehearsal evaluates few), one text-only, and two the encoder
    rejects (longer than max_length). Two ranks split them unevenly: rank 0 gets one usable sample of three, rank 1
    two of two, so only equal counts after encoding keep their evaluation batches in step."""
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(picture(rng, (640, 480)))
    records = [{"id": "one", "images": ["a.jpg"], "messages": [
                   {"role": "user", "content": "<image>How many circles are there?"},
                   {"role": "assistant", "content": "6"}]},
               {"id": "two", "images": ["b.jpg", "a.jpg"], "messages": [
                   {"role": "user", "content": "<image><image>Are these the same picture?"},
                   {"role": "assistant", "content": "no"}]}]
    too_long = [{"id": f"long{k}", "messages": [{"role": "user", "content": "读一读：" + "很长的文字。" * 800},
                                                {"role": "assistant", "content": "好"}]} for k in range(2)]
    text = {"id": "text", "messages": [{"role": "user", "content": "2+2等于几？"}, {"role": "assistant", "content": "4"}]}
    records = [records[0], records[1], too_long[0], text, too_long[1]]
    path = folder / "eval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def write_vqa_zh(folder: Path, n: int = 8) -> Path:
    """Chinese visual QA in our JSONL format, as `smvl data translate` writes it: the second source of zh.yaml."""
    rng = random.Random(2)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        (folder / f"q{i}.jpg").write_bytes(picture(rng, (640, 480)))
        records.append({"id": f"zh{i}", "images": [f"q{i}.jpg"], "messages": [
            {"role": "user", "content": "<image>图中有几个圆？"}, {"role": "assistant", "content": str(6 + i % 2)}]})
    path = folder / "vqa_zh.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path
