"""Images decoded late: a sample can carry its images undecoded (`ImageRef`) until it is about to be encoded.

Training shuffles through a buffer of `data.shuffle_buffer` samples; holding them decoded cost ~36 GB per worker
for 1,000 12 MP photos. Sources read lazily hold the image's bytes or path instead (its compressed size), and
`decoded()` turns them into RGB images after the buffer, still in the reading process, still skip-counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from smvl.data.samples.images import load_image
from smvl.data.samples.sample import BadSample, Sample
from smvl.data.samples.skips import SkipLog
from smvl.data.samples.video import VideoSampling, load_video


@dataclass(frozen=True)
class ImageRef:
    """What `load_image` takes (bytes, {bytes, path}, a path or base64 string) and the folder paths start from."""

    value: object
    base_dir: Path | None = None

    def load(self, draft=None):
        return load_image(self.value, self.base_dir, draft=draft)


@dataclass(frozen=True)
class VideoRef:
    """What `load_video` takes (a path, folder of frames, bytes, dict or data URI) and the folder paths start from."""

    value: object
    base_dir: Path | None = None

    def load(self, sampling: VideoSampling | None = None):
        return load_video(self.value, self.base_dir, sampling)


def decode(sample: Sample, draft=None, sampling: VideoSampling | None = None) -> Sample:
    """The sample with every ImageRef and VideoRef decoded, or BadSample; `draft` as in `load_image`, `sampling`
    (the frames a video gives) as in `load_video`."""
    sample.images = [im.load(draft) if isinstance(im, ImageRef) else im for im in sample.images]
    sample.videos = [v.load(sampling) if isinstance(v, VideoRef) else v for v in sample.videos]
    return sample


def decoded(samples: Iterable[Sample], skips: SkipLog, draft=None,
            sampling: VideoSampling | None = None) -> Iterator[Sample]:
    """Samples with their images and videos decoded; one whose image or video fails is dropped and counted (it was
    counted read)."""
    for sample in samples:
        try:
            decode(sample, draft, sampling)
        except BadSample as exc:
            skips.reject(sample.id, exc.reason)
            continue
        yield sample
