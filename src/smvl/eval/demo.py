"""The end-of-run evaluation of `smvl train`: image use on the held-out questions, and a few sample answers."""

from __future__ import annotations

from pathlib import Path

from smvl.data.batches.collate import CollateOptions
from smvl.data.samples.sample import Sample
from smvl.data.samples.skips import SkipLog
from smvl.eval.evaluate import score_model
from smvl.eval.image_use import under_policy
from smvl.eval.report import percent


def demo_report(model_dir: Path, samples: list[Sample], options: CollateOptions, data: str, seed: int,
                sample_questions: int, log) -> dict:
    """`options` are training's collate options, so the questions show the images training showed."""
    skips = SkipLog(max_fraction=1.0)
    samples = under_policy(samples, options, skips)
    if skips.skipped:
        log(skips.table())
    results = score_model(Path(model_dir), samples, Path(model_dir).parent, options, data, seed, batch_size=16,
                          retention_check=False)
    with_images, blank = results["accuracy_with_images"], results["accuracy_blank_images"]
    shuffled = percent(results["accuracy_shuffled_images"])
    if results["scored"]["shuffled_images"] < results["n"]:
        shuffled += f" of {results['scored']['shuffled_images']}"
    gap = f" (gap {with_images - blank:+.1%})" if with_images is not None else ""
    log(
        f"held-out accuracy ({results['n']} questions): with images {percent(with_images)}, "
        f"blank images {percent(blank)}, shuffled {shuffled}, "
        f"majority baseline {results['majority_baseline']:.1%}{gap}"
    )
    for kind, acc in results["accuracy_by_question_type"].items():
        log(f"  {kind:>12}: with images {percent(acc['with_images'])}, blank {percent(acc['blank_images'])}")
    for row in results["predictions"][:sample_questions]:
        log(f"  Q: {row['question']}  A: {row['with_images']}  (ref: {row['reference']})")
    return results
