"""ModelScope ids for models and data. ModelScope cannot be reached from the tests: the `modelscope` package is
replaced by a stand-in whose download functions return local folders (the tiny model, a generated the_cauldron
folder), so what is tested is the resolution (which hub, which id, which files) and everything after it, not
ModelScope's own client."""

from __future__ import annotations

import sys
import types

import pytest

from caption_data import write_caption_folder
from smvl.cli import main
from smvl.data.sources import open_source
from smvl.splice import modelscope
from smvl.splice.sources import SourceError, model_folder
from test_data_sources import row, write_subset


@pytest.fixture
def calls(monkeypatch, tiny_model, tmp_path):
    """The stand-in `modelscope` package; Hugging Face downloads fail loudly, so a wrong hub cannot pass."""
    import huggingface_hub

    cauldron = tmp_path / "ms-cauldron"
    for name in ("cocoqa", "ai2d"):
        write_subset(cauldron, name, [row(answer=f"{name} {i}") for i in range(6)])
    folders = {"owner/tiny": tiny_model, "AI-ModelScope/the_cauldron": cauldron,
               "owner/captions": write_caption_folder(tmp_path / "ms-captions", n=5)}
    made = []

    def snapshot_download(model_id, allow_patterns=None, **kwargs):
        made.append(("model", model_id, allow_patterns))
        if model_id not in folders:
            raise ValueError(f"The model: {model_id} is not found\nmore detail")
        return str(folders[model_id])

    def dataset_snapshot_download(dataset_id, allow_patterns=None, **kwargs):
        made.append(("dataset", dataset_id, allow_patterns))
        return str(folders[dataset_id])

    def hf_download(*args, **kwargs):
        raise AssertionError("went to the Hugging Face hub")

    fake = types.ModuleType("modelscope")
    fake.snapshot_download, fake.dataset_snapshot_download = snapshot_download, dataset_snapshot_download
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hf_download)
    monkeypatch.delenv(modelscope.ENV, raising=False)
    modelscope.download_dataset.cache_clear()
    yield made
    modelscope.download_dataset.cache_clear()


def test_a_modelscope_model_id_resolves_through_modelscope(calls, tiny_model, capsys):
    assert model_folder("modelscope:owner/tiny") == tiny_model
    assert calls[0][:2] == ("model", "owner/tiny") and "*.safetensors" in calls[0][2]
    assert main(["check", "modelscope:owner/tiny"]) == 0 and "[PASS]" in capsys.readouterr().out


def test_the_environment_variable_and_hub_flag_send_bare_ids_to_modelscope(calls, tiny_model, monkeypatch, capsys):
    monkeypatch.setenv(modelscope.ENV, "modelscope")
    assert model_folder("owner/tiny") == tiny_model
    monkeypatch.setenv(modelscope.ENV, "huggingface")
    with pytest.raises(SourceError, match="could not be fetched from the Hugging Face hub: went to the Hugging Face"):
        model_folder("owner/tiny")
    assert main(["--hub", "modelscope", "check", "owner/tiny"]) == 0  # the flag sets the variable for the run
    assert [c[1] for c in calls] == ["owner/tiny", "owner/tiny"]


def test_a_missing_modelscope_model_is_one_line(calls, capsys):
    assert main(["check", "modelscope:owner/nothing"]) == 2
    err = capsys.readouterr().err
    assert "modelscope:owner/nothing could not be fetched from ModelScope: The model: owner/nothing is not found" \
        in err and err.count("\n") == 1, err


def test_the_cauldron_from_modelscope_downloads_only_the_chosen_subsets(calls):
    samples = list(open_source("modelscope:AI-ModelScope/the_cauldron", subsets="cocoqa", holdout=0))
    assert [s.messages[-1]["content"] for s in samples] == [f"cocoqa {i}" for i in range(6)]
    assert calls == [("dataset", "AI-ModelScope/the_cauldron", ["cocoqa/*"])]
    assert {s.source for s in open_source("modelscope:AI-ModelScope/the_cauldron", holdout=0)} == {"cocoqa", "ai2d"}
    assert calls[-1] == ("dataset", "AI-ModelScope/the_cauldron", None)  # all subsets: the whole repo


def test_with_the_variable_set_cauldron_hub_names_go_to_the_modelscope_copy(calls, monkeypatch):
    monkeypatch.setenv(modelscope.ENV, "modelscope")
    samples = list(open_source("cauldron:ai2d", holdout=0))
    assert len(samples) == 6 and {s.source for s in samples} == {"ai2d"}
    assert calls == [("dataset", "AI-ModelScope/the_cauldron", ["ai2d/*"])]


def test_any_modelscope_dataset_reads_as_the_folder_it_downloads(calls):
    samples = list(open_source("modelscope:owner/captions", holdout=0))
    assert len(samples) == 5 and calls == [("dataset", "owner/captions", None)]


def test_without_the_extra_installed_each_kind_of_id_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # `import modelscope` now raises ImportError
    monkeypatch.delenv(modelscope.ENV, raising=False)
    modelscope.download_dataset.cache_clear()
    with pytest.raises(SourceError, match=r"need the modelscope package: pip install 'smvl\[modelscope\]'"):
        model_folder("modelscope:Qwen/Qwen3-0.6B")
    assert main(["data", "inspect", "modelscope:AI-ModelScope/the_cauldron", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("pip install 'smvl[modelscope]'") and err.count("\n") == 1, err


def test_an_unknown_hub_name_is_one_line(monkeypatch):
    monkeypatch.setenv(modelscope.ENV, "gitee")
    with pytest.raises(SourceError, match="SMVL_HUB='gitee' is not a hub this knows"):
        model_folder("owner/tiny")
