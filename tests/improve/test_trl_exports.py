"""Proof that TRL accepts the exports as they are: each export is loaded with
``datasets.load_dataset("json", ...)`` and trained for two steps by TRL's DPOTrainer,
RewardTrainer, KTOTrainer and SFTTrainer, in the standard and the conversational form, on
a one-layer GPT-2 built from a config with a word-level tokenizer trained here. Nothing is
downloaded (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.improve.datasets import Dataset
from feedbackloop.improve.exports import export_dataset
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from .test_recipes import World

# Before TRL (and so transformers and datasets) is imported: both read these at import.
# The machines are offline anyway; this makes any attempt fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
pytest.importorskip("trl")

pytestmark = [
    pytest.mark.slow,
    # transformers and TRL warn about their own deprecations and CPU settings
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}<eos>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}")

QUESTIONS = ["what is the capital of {c}", "name the biggest city of {c}",
             "which river flows through {c}", "what language is spoken in {c}"]
COUNTRIES = ["france", "spain", "italy", "norway", "poland", "greece"]


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, offline: None) -> dict[str, Any]:
    """Preference, KTO and SFT datasets built from feedback and exported in every form."""
    tmp = tmp_path_factory.mktemp("trl")
    url = f"sqlite:///{tmp / 'fl.db'}"
    store = Store.from_url(url)
    store.migrate()
    try:
        w = World(store, load_settings(data_dir=str(tmp / "data"), database_url=url,
                                       pseudonym_key="k"))
        k = 0
        for q in QUESTIONS:
            for c in COUNTRIES:
                prompt = q.format(c=c)
                good, bad = f"a good answer about {c}", f"no idea sorry {c}"
                w.interaction(f"g{k}", prompt, good)
                w.interaction(f"b{k}", prompt, bad)
                w.fb(f"g{k}", "pref", "a", b=f"b{k}", rater="r1")
                w.fb(f"g{k}", "thumbs", True, rater="r1", correction=f"the answer is {c}")
                w.fb(f"b{k}", "thumbs", False, rater="r1")
                k += 1
        common = {"splits": {"train": 0.75, "test": 0.25}, "near_duplicates": False}
        built: dict[str, Dataset] = {
            "preference": w.build("preference", {"signal": "pref", **common}, name="pref"),
            "kto": w.build("kto", {"signal": "thumbs", "stratify": True, **common},
                           name="kto"),
            "sft": w.build("sft", common, name="sft"),
        }
        out: dict[str, Any] = {}
        for task, recipe in (("dpo", "preference"), ("reward", "preference"),
                             ("kto", "kto"), ("sft", "sft")):
            for style in ("standard", "conversational"):
                out[(task, style)] = export_dataset(store, "shop", built[recipe],
                                                    tmp / f"{task}-{style}", task=task,
                                                    style=style)
        texts = [f"{q.format(c=c)} a good answer about {c} no idea sorry the answer is"
                 for q in QUESTIONS for c in COUNTRIES]
        out["tokenizer"] = _tokenizer(texts)
        out["tmp"] = tmp
        return out
    finally:
        store.dispose()


def _tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [*texts, "user assistant : \n"],
        trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _config(tok: Any, **kw: Any) -> Any:
    from transformers import GPT2Config

    return GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128, vocab_size=len(tok),
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **kw)


def _args(tmp: Path, name: str) -> dict[str, Any]:
    return {"output_dir": str(tmp / f"run-{name}"), "max_steps": 2,
            "per_device_train_batch_size": 2, "report_to": "none", "save_strategy": "no",
            "logging_strategy": "no", "use_cpu": True, "disable_tqdm": True,
            "gradient_checkpointing": False, "seed": 0}


def _load(result: dict[str, Any]) -> Any:
    from datasets import load_dataset

    folder = Path(result["card"]).parent
    return load_dataset("json", data_files={"train": result["files"]["train"]},
                        cache_dir=str(folder / "cache"))["train"]


def _trained(trainer: Any) -> None:
    out = trainer.train()
    assert out.global_step == 2
    assert out.training_loss == out.training_loss  # a number, not NaN


STYLES = ["standard", "conversational"]


@pytest.mark.parametrize("style", STYLES)
def test_dpo_trainer_accepts_the_export(exports: dict[str, Any], style: str) -> None:
    import trl
    from transformers import GPT2LMHeadModel

    tok, result = exports["tokenizer"], exports[("dpo", style)]
    data = _load(result)
    assert data.column_names == ["prompt", "chosen", "rejected"]
    model = GPT2LMHeadModel(_config(tok))
    _trained(trl.DPOTrainer(model=model, ref_model=copy.deepcopy(model),
                            args=trl.DPOConfig(**_args(exports["tmp"], f"dpo-{style}")),
                            train_dataset=data, processing_class=tok))


@pytest.mark.parametrize("style", STYLES)
def test_reward_trainer_accepts_the_export(exports: dict[str, Any], style: str) -> None:
    import trl
    from transformers import GPT2ForSequenceClassification

    tok, result = exports["tokenizer"], exports[("reward", style)]
    data = _load(result)
    assert data.column_names == ["chosen", "rejected"]
    model = GPT2ForSequenceClassification(_config(tok, num_labels=1))
    _trained(trl.RewardTrainer(
        model=model, args=trl.RewardConfig(**_args(exports["tmp"], f"rm-{style}")),
        train_dataset=data, processing_class=tok))


@pytest.mark.parametrize("style", STYLES)
def test_kto_trainer_accepts_the_export(exports: dict[str, Any], style: str) -> None:
    import trl
    from transformers import GPT2LMHeadModel

    tok, result = exports["tokenizer"], exports[("kto", style)]
    data = _load(result)
    assert data.column_names == ["prompt", "completion", "label"]
    assert set(data["label"]) == {True, False}
    model = GPT2LMHeadModel(_config(tok))
    _trained(trl.KTOTrainer(model=model, ref_model=copy.deepcopy(model),
                            args=trl.KTOConfig(**_args(exports["tmp"], f"kto-{style}")),
                            train_dataset=data, processing_class=tok))


@pytest.mark.parametrize("style", STYLES)
def test_sft_trainer_accepts_the_export(exports: dict[str, Any], style: str) -> None:
    import trl
    from transformers import GPT2LMHeadModel

    tok, result = exports["tokenizer"], exports[("sft", style)]
    data = _load(result)
    expected = ["prompt", "completion"] if style == "standard" else ["messages"]
    assert data.column_names == expected
    _trained(trl.SFTTrainer(model=GPT2LMHeadModel(_config(tok)),
                            args=trl.SFTConfig(**_args(exports["tmp"], f"sft-{style}")),
                            train_dataset=data, processing_class=tok))


def test_the_card_lets_load_dataset_find_the_splits(exports: dict[str, Any]) -> None:
    from datasets import load_dataset

    result = exports[("dpo", "standard")]
    folder = str(Path(result["card"]).parent)
    loaded = load_dataset(folder, cache_dir=str(exports["tmp"] / "cache"))
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].num_rows == result["rows"]["train"]
    assert loaded["test"].num_rows == result["rows"]["test"]
