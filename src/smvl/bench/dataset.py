"""A the_cauldron-shaped folder with the_cauldron's image size mix, made in code (deterministic, no download).

Three subsets, as parquet files with the real schema (`images`: list of {bytes, path}, `texts`: list of {user,
assistant, source}), one image and one short question/answer per row, in the proportions of `MIX`:
- `docvqa`: document pages around 1700x2200 (size jittered a few %) of printed-looking text: scans with grain as
  JPEG, one in four a clean born-digital PNG;
- `chartqa`: bar charts around 900x700, PNG;
- `vqav2`: photos around 640x480 (landscape, a few portrait), smooth colour fields with shapes and sensor noise; JPEG.
The SmolVLM processor scales every image to a 2,048 px longest edge before tiling, so at 512 px tiles a photo
costs 13 tiles (4x3 + global) and documents and charts 17 (4x4 + global): the token and pixel load of the real
mix, whose images the real pair's processor upscales the same way.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIX = {"docvqa": 0.25, "chartqa": 0.25, "vqav2": 0.5}
WORDS = ("total revenue fiscal year report page table figure results net income operating expenses department "
         "committee annual summary statement date amount balance account approved signature section").split()
RECIPE = "smvl-bench-data-1"  # written beside the parquet files: a folder made by another recipe is rebuilt


def _size(rng: random.Random, width: int, height: int) -> tuple[int, int]:
    return round(width * rng.uniform(0.95, 1.05)), round(height * rng.uniform(0.95, 1.05))


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=90) if fmt == "JPEG" else image.save(buf, format=fmt, compress_level=6)
    return buf.getvalue()


def _grain(image: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, sigma, (image.height, image.width, 1))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def document(rng: random.Random) -> tuple[bytes, str]:
    width, height = _size(rng, 1700, 2200)
    page = Image.new("RGB", (width, height), (248, 247, 242))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=30)
    draw.text((150, 110), "ANNUAL REPORT", fill=(20, 20, 20), font=ImageFont.load_default(size=56))
    for y in range(220, height - 150, 46):
        if rng.random() < 0.1:
            continue  # paragraph gap
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 12)))
        draw.text((150, y), line, fill=(25, 25, 25), font=font)
    if rng.random() < 0.25:  # born-digital page: clean, lossless
        return _encode(page, "PNG"), "What is the title of the document?"
    return _encode(_grain(page, rng, 4.0), "JPEG"), "What is the title of the document?"


def chart(rng: random.Random) -> tuple[bytes, str]:
    width, height = _size(rng, 900, 700)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    left, bottom = 90, height - 80
    draw.line([(left, 40), (left, bottom), (width - 40, bottom)], fill=(0, 0, 0), width=2)
    bars = rng.randrange(4, 9)
    step = (width - left - 60) // bars
    for i in range(bars):
        top = rng.randrange(60, bottom - 20)
        colour = tuple(rng.randrange(40, 220) for _ in range(3))
        draw.rectangle([left + 15 + i * step, top, left + i * step + step - 5, bottom - 1], fill=colour)
        draw.text((left + 15 + i * step, bottom + 12), f"{2015 + i}", fill=(0, 0, 0), font=font)
        draw.text((left + 15 + i * step, top - 24), f"{(bottom - top) / 10:.1f}", fill=(0, 0, 0), font=font)
    return _encode(image, "PNG"), "What is the value of the highest bar?"


def photo(rng: random.Random) -> tuple[bytes, str]:
    width, height = _size(rng, 640, 480)
    if rng.random() < 0.15:
        width, height = height, width
    field = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(3, 8)):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(20, 120)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return _encode(_grain(image, rng, 6.0), "JPEG"), "How many objects are there?"


MAKERS = {"docvqa": document, "chartqa": chart, "vqav2": photo}


def counts(samples: int) -> dict[str, int]:
    """Rows per subset for `samples` in all, in MIX's proportions (every subset at least one)."""
    out = {name: max(1, round(samples * share)) for name, share in MIX.items()}
    out["vqav2"] += samples - sum(out.values())
    return out


def write_bench_set(root: Path, samples: int = 64, seed: int = 0) -> Path:
    """The folder at `root` (made once per recipe, sample count and seed; reused after)."""
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    stamp = {"recipe": RECIPE, "samples": samples, "seed": seed}
    marker = root / "smvl-bench-data.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return root
    text = {k: Value("string") for k in ("user", "assistant", "source")}
    features = Features({"images": List(ImageFeature()), "texts": List(text)})
    rng = random.Random(seed)
    for subset, n in counts(samples).items():
        rows = []
        for i in range(n):
            data, question = MAKERS[subset](rng)
            rows.append({"images": [{"bytes": data, "path": None}],
                         "texts": [{"user": question, "assistant": f"answer {i}", "source": subset}]})
        (root / subset).mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows, features=features).to_parquet(str(root / subset / "train-00000-of-00001.parquet"))
    marker.write_text(json.dumps(stamp))
    return root
