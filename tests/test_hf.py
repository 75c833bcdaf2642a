"""Hugging Face interoperability: export to and import from transformers folders (DNABERT's layout)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from bpe_fixtures import bpe_run, small_bpe
from dnabert2_fixtures import DNABERT2_SPECIALS, dna_strings, dnabert2_tokenizer
from realdata import GENOME, GUE

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from randommask import checkpoint as ckpt  # noqa: E402
from randommask import hf  # noqa: E402
from randommask.cli import main as cli_main  # noqa: E402
from randommask.model import BertForMaskedLM, BertForSequenceClassification, ModelConfig  # noqa: E402
from randommask.pretrain import load_config, pretrain  # noqa: E402
from randommask.tokenizers import SPECIAL_TOKENS, BpeTokenizer, KmerTokenizer  # noqa: E402

RNG = np.random.default_rng(7)
SEQS = ["".join(RNG.choice(list("ACGT"), 120)), "".join(RNG.choice(list("ACGT"), 40)) + "N" +
        "".join(RNG.choice(list("ACGT"), 30))]


def tiny_cfg(out: Path, **kw) -> object:
    data = {"out_dir": str(out), "data": {"fasta": [str(GENOME)], "max_tokens": 64}, "steps": 10, "batch_size": 4,
            "progress": False, "eval_windows": 4, "save_interval": 10, **kw}
    return load_config(data)


def kmers(seq: str, k: int = 6, stride: int = 1) -> str:
    return " ".join(seq[i : i + k] for i in range(0, len(seq) - k + 1, stride))


def our_mlm(run: Path) -> tuple[BertForMaskedLM, KmerTokenizer]:
    pre = ckpt.load_pretrained(run)
    model = BertForMaskedLM(ModelConfig.from_dict(pre.model_config))
    model.load_state_dict(pre.model_state)
    return model.eval(), pre.tokenizer


def our_logits(model: torch.nn.Module, tok: KmerTokenizer, seqs: list[str]) -> tuple[torch.Tensor, np.ndarray]:
    enc = tok.encode_batch(seqs)
    with torch.no_grad():
        out = model(torch.from_numpy(enc.ids).long(), torch.from_numpy(enc.attention_mask))
    return out.logits, enc


def assert_same_logits(a: torch.Tensor, b: torch.Tensor, mask: np.ndarray) -> None:
    keep = torch.from_numpy(mask).bool()
    assert a.shape == b.shape
    torch.testing.assert_close(a[keep], b[keep], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "run"
    pretrain(tiny_cfg(out))
    return out


@pytest.fixture(scope="module")
def exported(run: Path) -> Path:
    out = run.parent / "exported"
    hf.export_run(run, out)
    return out


def make_dnabert(folder: Path, order: str = "shuffled", seed: int = 0) -> tuple[Path, list[str]]:
    """A DNABERT-style folder: BertForMaskedLM (tiny preset's shape), random weights, a 6-mer vocab.txt."""
    kmer_list = KmerTokenizer(6).vocab[len(SPECIAL_TOKENS):]
    if order == "shuffled":
        kmer_list = list(np.random.default_rng(seed).permutation(kmer_list))
    vocab = [*SPECIAL_TOKENS, *kmer_list]
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=128, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=512, max_position_embeddings=512)
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(config)
    with torch.no_grad():  # HF initialises biases to zero and LayerNorms to one: make every tensor count
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    folder.mkdir(parents=True)
    config.to_json_file(str(folder / "config.json"))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # DNABERT's releases: a plain .bin
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    return folder, vocab


@pytest.fixture(scope="module")
def dnabert(tmp_path_factory) -> tuple[Path, list[str]]:
    return make_dnabert(tmp_path_factory.mktemp("dnabert") / "dnabert6")


@pytest.fixture(scope="module")
def imported_dnabert(dnabert, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "run"
    assert cli_main(["import", str(dnabert[0]), str(out)]) == 0
    return out


# ------------------------------------------------------------------------------------------ export
def test_export_loads_in_transformers_with_same_ids_and_logits(run: Path, exported: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
            "README.md"} <= names
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and config["model_type"] == "bert"
    assert "auto_map" not in config

    hf_model, info = transformers.AutoModelForMaskedLM.from_pretrained(exported, output_loading_info=True)
    assert type(hf_model) is transformers.BertForMaskedLM
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf_model.eval()
    emb = hf_model.bert.embeddings.word_embeddings.weight
    assert hf_model.cls.predictions.decoder.weight.data_ptr() == emb.data_ptr()  # tied on reload

    ours, tok = our_mlm(run)
    logits, enc = our_logits(ours, tok, SEQS)
    text = [kmers(s) for s in SEQS]
    tokenizers = [transformers.AutoTokenizer.from_pretrained(exported), transformers.BertTokenizer.from_pretrained(
        exported)]
    for extra in ("BertTokenizerFast", "BertTokenizerLegacy"):  # fast in v4, slow (python) in v5
        cls = getattr(transformers, extra, None)
        if cls is None:
            try:
                from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as cls
            except ImportError:
                continue
        tokenizers.append(cls.from_pretrained(exported))
    for hf_tok in tokenizers:
        batch = hf_tok(text, padding=True, return_tensors="pt")
        assert np.array_equal(batch["input_ids"].numpy(), enc.ids), type(hf_tok)
        assert np.array_equal(batch["attention_mask"].numpy(), enc.attention_mask), type(hf_tok)
    assert enc.ids[1, 1 + 40 - 5] == tok.unk_id  # the k-mers over the N are [UNK] on both sides
    with torch.no_grad():
        hf_logits = hf_model(**hf_tok(text, padding=True, return_tensors="pt")).logits
    assert_same_logits(logits, hf_logits, enc.attention_mask)


def test_model_card_describes_the_run_and_its_snippets_work(run: Path, exported: Path) -> None:
    card = (exported / "README.md").read_text()
    assert "library_name: transformers" in card
    for fact in ("kmer6", "RandomMask", "5 phases", "Steps: 10", GENOME.name, "[UNK]"):
        assert fact in card, fact
    assert str(run.parent) not in card  # local paths are cut to file names
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 2
    for code in blocks:
        scope: dict = {}
        exec(code.replace("path/to/this/folder", str(exported)), scope)  # noqa: S102
        assert scope["out"].logits.shape[-1] == 4101


def test_round_trip_gives_identical_parameters(run: Path, exported: Path, tmp_path: Path) -> None:
    back = tmp_path / "back"
    hf.import_hf(exported, back)
    a, b = ckpt.load_pretrained(run), ckpt.load_pretrained(back)
    assert a.model_state.keys() == b.model_state.keys()
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    assert a.tokenizer.vocab == b.tokenizer.vocab and a.tokenizer.name == b.tokenizer.name
    assert a.model_config == b.model_config
    state = ckpt.load_checkpoint(b.checkpoint)
    assert state["kind"] == "import" and state["step"] == 0 and b.checkpoint.name == "step-0.pt"
    assert (back / "config.yaml").is_file() and (back / "vocab.txt").read_text() == (run / "vocab.txt").read_text()


def test_export_of_a_finetuned_run_is_a_sequence_classifier(run: Path, tmp_path: Path) -> None:
    # A fine-tuned checkpoint as `randommask finetune` saves it: kind "finetune", labels in id order.
    pre = ckpt.load_pretrained(run)
    conf = ModelConfig.from_dict({**pre.model_config, "num_labels": 3})
    torch.manual_seed(1)
    model = BertForSequenceClassification(conf).eval()
    ft = tmp_path / "ft"
    ckpt.save_checkpoint(ft, 5, {"step": 5, "model": model.state_dict(), "model_config": conf.to_dict(),
                                 "tokenizer": {"name": "kmer6", "k": 6, "stride": 1}, "vocab": pre.tokenizer.vocab,
                                 "config": {"task": "/x/GUE/splice/reconstructed"}, "kind": "finetune",
                                 "labels": ["donor", "acceptor", "none"]})
    out = tmp_path / "ft-hf"
    assert cli_main(["export", str(ft), str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "donor", "1": "acceptor", "2": "none"}
    hf_model, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf_model.eval()
    enc = pre.tokenizer.encode_batch(SEQS)
    ids, am = torch.from_numpy(enc.ids).long(), torch.from_numpy(enc.attention_mask)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, am).logits, hf_model(input_ids=ids, attention_mask=am).logits,
                                   atol=1e-5, rtol=0)
    assert "text-classification" in (out / "README.md").read_text()


# ------------------------------------------------------------------------------------------ import
def test_import_dnabert_gives_transformers_logits(dnabert, imported_dnabert: Path) -> None:
    folder, vocab = dnabert
    pre = ckpt.load_pretrained(imported_dnabert)
    assert pre.tokenizer.vocab == vocab and pre.tokenizer.k == 6 and pre.tokenizer.stride == 1
    state = ckpt.load_checkpoint(pre.checkpoint)
    assert state["kind"] == "import" and state["step"] == 0
    assert state["tokenizer"] == {"name": "kmer6", "k": 6, "stride": 1}
    ours = BertForMaskedLM(ModelConfig.from_dict(pre.model_config))
    ours.load_state_dict(pre.model_state)
    logits, enc = our_logits(ours.eval(), pre.tokenizer, SEQS)
    # The ids are DNABERT's: each k-mer's line number in its vocab.txt.
    index = {t: i for i, t in enumerate(vocab)}
    for row, seq in enumerate(SEQS):
        expect = [index["[CLS]"], *(index.get(m, index["[UNK]"]) for m in kmers(seq).split()), index["[SEP]"]]
        assert enc.ids[row, : len(expect)].tolist() == expect
    hf_model = transformers.BertForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = hf_model(input_ids=torch.from_numpy(enc.ids).long(),
                       attention_mask=torch.from_numpy(enc.attention_mask)).logits
    assert_same_logits(logits, ref, enc.attention_mask)


@pytest.mark.parametrize("order", ["canonical", "shuffled"])
def test_continue_pretraining_an_imported_model(order: str, dnabert, imported_dnabert: Path, tmp_path: Path) -> None:
    if order == "shuffled":
        src = imported_dnabert
    else:
        src = tmp_path / "imported"
        hf.import_hf(make_dnabert(tmp_path / "dnabert", order="canonical")[0], src)
    out = tmp_path / "cont"
    result = pretrain(tiny_cfg(out, steps=2, save_interval=2), init_from=str(src))
    assert result["step"] == 2
    start, cont = ckpt.load_pretrained(src), ckpt.load_pretrained(out)
    assert cont.tokenizer.vocab == start.tokenizer.vocab
    # Two steps in warm-up (lr ~1e-5) move the weights very little: the run started from the import.
    for key in ("bert.embeddings.position_embeddings.weight", "bert.encoder.layer.1.output.dense.weight"):
        assert (cont.model_state[key] - start.model_state[key]).abs().max() < 1e-3, key


def test_finetune_an_imported_model_then_export_it(imported_dnabert: Path, tmp_path: Path) -> None:
    from randommask.finetune import finetune, load_finetune_config

    task = GUE / "mouse" / "0"
    out = tmp_path / "ft"
    results = finetune(load_finetune_config({
        "model": str(imported_dnabert), "task": str(task), "out_dir": str(out), "max_steps": 3, "batch_size": 8,
        "max_train_examples": 24, "max_eval_examples": 16, "eval_batch_size": 16, "progress": False}))
    assert results["model"]["kind"] == "import" and results["tokenizer"]["name"] == "kmer6"
    pre = ckpt.load_pretrained(out)
    assert pre.tokenizer.vocab == ckpt.load_pretrained(imported_dnabert).tokenizer.vocab  # DNABERT's id order
    exported = tmp_path / "ft-hf"
    assert cli_main(["export", str(out), str(exported)]) == 0
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(exported).eval()
    ours = BertForSequenceClassification(ModelConfig.from_dict(pre.model_config))
    ours.load_state_dict(pre.model_state)
    hf_tok = transformers.AutoTokenizer.from_pretrained(exported)
    enc = pre.tokenizer.encode_batch(SEQS)
    batch = hf_tok([kmers(s) for s in SEQS], padding=True, return_tensors="pt")
    assert np.array_equal(batch["input_ids"].numpy(), enc.ids)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(batch["input_ids"], batch["attention_mask"]).logits,
                                   hf_model(**batch).logits, atol=1e-5, rtol=0)
    card = (exported / "README.md").read_text()
    assert "on task `mouse/0`" in card and "AutoModelForSequenceClassification" in card


def test_import_non_default_stride(dnabert, tmp_path: Path) -> None:
    out = tmp_path / "nonoverlap"
    assert cli_main(["import", str(dnabert[0]), str(out), "--stride", "k"]) == 0
    pre = ckpt.load_pretrained(out)
    assert pre.tokenizer.stride == 6 and pre.tokenizer.name == "kmer6-nonoverlap"


# ------------------------------------------------------------------------------------------ errors
def err(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 2
    msg = capsys.readouterr().err.strip()
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def copy_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.name not in skip:
            (dst / p.name).symlink_to(p)
    return dst


def test_import_errors(dnabert, tmp_path: Path, capsys) -> None:
    folder = dnabert[0]
    out = str(tmp_path / "out")

    words = copy_folder(folder, tmp_path / "words", skip=("vocab.txt",))
    (words / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nof\n")
    msg = err(capsys, ["import", str(words), out])
    assert "vocab.txt, line 6" in msg and "not a k-mer vocabulary" in msg

    no_weights = copy_folder(folder, tmp_path / "no-weights", skip=("pytorch_model.bin",))
    msg = err(capsys, ["import", str(no_weights), out])
    assert "no-weights: no model weights" in msg and "pytorch_model.bin" in msg

    no_vocab = copy_folder(folder, tmp_path / "no-vocab", skip=("vocab.txt",))
    assert "vocab.txt: not found" in err(capsys, ["import", str(no_vocab), out])
    no_config = copy_folder(folder, tmp_path / "no-config", skip=("config.json",))
    assert "config.json: not found" in err(capsys, ["import", str(no_config), out])

    config = json.loads((folder / "config.json").read_text())
    for name, change, expect in [
        ("roberta", {"model_type": "roberta"}, "model_type is 'roberta', not 'bert'"),
        ("relu", {"hidden_act": "relu"}, "hidden_act is 'relu'"),
        ("vocab-size", {"vocab_size": 30522}, "vocab_size is 30522, but vocab.txt has 4101 tokens"),
    ]:
        bad = copy_folder(folder, tmp_path / name, skip=("config.json",))
        (bad / "config.json").write_text(json.dumps({**config, **change}))
        msg = err(capsys, ["import", str(bad), out])
        assert "config.json" in msg and expect in msg, msg

    small = copy_folder(folder, tmp_path / "small-weights", skip=("pytorch_model.bin",))
    torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(70, 128)}, small / "pytorch_model.bin")
    msg = err(capsys, ["import", str(small), out])
    assert "pytorch_model.bin: word embeddings have 70 rows, but vocab.txt has 4101 tokens" in msg

    assert "--stride must be 1" in err(capsys, ["import", str(folder), out, "--stride", "3"])
    assert "nope: folder not found" in err(capsys, ["import", str(tmp_path / "nope"), out])
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_refuses_non_empty_folder_without_force(run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "taken: folder exists and is not empty; pass --force" in err(capsys, ["export", str(run), str(out)])
    assert (out / "keep.txt").read_text() == "mine"

    # A failure while writing leaves the old folder as it was and no temporary folder behind.
    import safetensors.torch

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    msg = err(capsys, ["export", str(run), str(out), "--force"])
    assert "No space left on device" in msg
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    monkeypatch.undo()

    assert cli_main(["export", str(run), str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert "would replace the input" in err(capsys, ["export", str(run), str(run.parent), "--force"])
    assert "not a randommask run folder" in err(capsys, ["export", str(out), str(tmp_path / "x")])


# ------------------------------------------------------------------------------------------ BPE (DNABERT-2's tokenizer)
def random_dna(seed: int, n: int = 12) -> list[str]:
    """DNA as users hand it over: mostly bases, with soft-masked (lowercase) stretches, N, other IUPAC codes
    and U, of lengths from 1 base to a few hundred (one run of Ns, one single base)."""
    rng = np.random.default_rng(seed)
    letters = list("ACGT" * 6 + "acgtNnRyU")
    seqs = ["".join(rng.choice(letters, int(rng.integers(2, 300)))) for _ in range(n)]
    return [*seqs, "G", "ACGTNNNNNNacgtnRYKMSWBDHVUu" + seqs[0][:50]]


def specials(tok) -> tuple[int, ...]:
    """(pad, unk, cls, sep, mask) ids, of a randommask or a transformers tokenizer."""
    if hasattr(tok, "mask_id"):
        return tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id
    return tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id


@pytest.fixture(scope="module")
def bpe_pre(tmp_path_factory) -> Path:
    """A BPE run in randommask's id order ([PAD] = 0), from `randommask tokenizer train`'s vocabulary."""
    root = tmp_path_factory.mktemp("bpe")
    return bpe_run(root / "run", small_bpe(root / "tok"))


@pytest.fixture(scope="module")
def dnabert2_run(tmp_path_factory) -> Path:
    """A 3-step run on a DNABERT-2-style tokenizer.json ([UNK] = 0 ... [PAD] = 3, [MASK] = 4), from the CLI."""
    root = tmp_path_factory.mktemp("dnabert2")
    tok = dnabert2_tokenizer(root / "tokenizer")
    out = root / "run"
    assert cli_main(["pretrain", str(GENOME), "--out", str(out), "--tokenizer", f"bpe:{tok}", "--masking", "bert",
                     "--steps", "3", "--batch-size", "4", "--data.max_tokens", "64", "--eval-interval", "3",
                     "--eval-windows", "4", "--log-interval", "3", "--progress", "false"]) == 0
    return out


def export_once(run: Path) -> Path:
    out = run.parent / "exported"
    if not out.exists():
        assert cli_main(["export", str(run), str(out)]) == 0
    return out


@pytest.fixture(params=["bpe_pre", "dnabert2_run"])
def bpe_case(request) -> tuple[Path, Path]:
    """(run folder, its export) for both id orders."""
    run = request.getfixturevalue(request.param)
    return run, export_once(run)


def test_bpe_export_loads_in_transformers_with_same_ids_and_logits(bpe_case) -> None:
    run, exported = bpe_case
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "README.md"} <= names
    assert "vocab.txt" not in names  # BertTokenizer would read it as WordPiece, with other ids
    config = json.loads((exported / "config.json").read_text())
    opened = ckpt.open_run(run)
    tok = opened.tokenizer
    assert config["randommask"] == {"tokenizer": tok.name, "type": "bpe", "bases_per_token_mean":
                                    tok.bases_per_token_mean, "kind": "pretrain", "step": opened.step}
    assert config["vocab_size"] == tok.vocab_size and config["pad_token_id"] == tok.pad_id
    assert json.loads((exported / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"

    hf_model, info = transformers.AutoModelForMaskedLM.from_pretrained(exported, output_loading_info=True)
    assert type(hf_model) is transformers.BertForMaskedLM
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf_tok = transformers.AutoTokenizer.from_pretrained(exported)
    assert isinstance(hf_tok, transformers.PreTrainedTokenizerFast)
    assert specials(hf_tok) == specials(tok) and len(hf_tok) == tok.vocab_size

    ours, _ = our_mlm(run)
    for seed in range(3):
        seqs = random_dna(seed)
        logits, enc = our_logits(ours, tok, seqs)
        batch = hf_tok(seqs, padding=True, return_tensors="pt")
        assert np.array_equal(batch["input_ids"].numpy(), enc.ids), seed
        assert np.array_equal(batch["attention_mask"].numpy(), enc.attention_mask), seed
        assert (enc.ids == tok.unk_id).sum() >= 10  # the Ns and IUPAC codes were there to compare
        with torch.no_grad():
            hf_logits = hf_model(**batch).logits
        assert_same_logits(logits, hf_logits, enc.attention_mask)
    # Truncation from the 3' end and padding to a length, as randommask's encode_batch does them.
    seqs = random_dna(5)
    enc = tok.encode_batch(seqs, max_length=40, truncation=True, padding="max_length")
    batch = hf_tok(seqs, max_length=40, truncation=True, padding="max_length", return_tensors="np")
    assert np.array_equal(batch["input_ids"], enc.ids) and np.array_equal(batch["attention_mask"], enc.attention_mask)
    # Soft-masked DNA reads as the same bases in transformers too.
    upper = "".join(np.random.default_rng(9).choice(list("ACGT"), 200))
    assert hf_tok(upper.lower())["input_ids"] == hf_tok(upper)["input_ids"] == enc_row(tok, upper)


def enc_row(tok: BpeTokenizer, seq: str) -> list[int]:
    return tok.encode(seq).ids[0].tolist()


def test_bpe_model_card_describes_bpe_and_its_snippets_work(bpe_pre: Path) -> None:
    exported = export_once(bpe_pre)
    card = (exported / "README.md").read_text()
    tok = ckpt.open_run(bpe_pre).tokenizer
    assert "- bpe\n" in card and "- kmer\n" not in card
    lo, hi = min(len(tok.vocab[i]) for i in tok.kmer_ids), max(len(tok.vocab[i]) for i in tok.kmer_ids)
    for fact in (f"`{tok.name}`, byte-pair encoding", f"{len(tok.kmer_ids)} DNA strings of {lo} to {hi} bases",
                 f"{tok.bases_per_token_mean:.2f} bases per token", "each N is one `[UNK]`", "`[MASK]` = 4",
                 "Steps: 4", GENOME.name, '"tokenizer": "bpe:tok"', "BpeTokenizer.from_file"):
        assert fact in card, fact
    for wrong in ("KmerTokenizer", "-mer tokens", "vocab.txt", "to_kmers", "stride"):
        assert wrong not in card, wrong
    assert str(bpe_pre.parent) not in card  # local paths are cut to file names
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 2
    outs = []
    for code in blocks:
        scope: dict = {}
        exec(code.replace("path/to/this/folder", str(exported)), scope)  # noqa: S102
        outs.append(scope["out"].logits)
    assert outs[0].shape[-1] == tok.vocab_size
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)  # the two ways to tokenize agree


def test_bpe_round_trip_gives_identical_parameters_and_logits(bpe_case, tmp_path: Path) -> None:
    run, exported = bpe_case
    back = tmp_path / "back"
    assert cli_main(["import", str(exported), str(back)]) == 0
    a, b = ckpt.open_run(run), ckpt.open_run(back)
    assert a.model_state.keys() == b.model_state.keys()
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    assert b.tokenizer.kind == "bpe" and b.tokenizer.vocab == a.tokenizer.vocab and b.tokenizer.name == a.tokenizer.name
    assert specials(b.tokenizer) == specials(a.tokenizer)
    assert b.tokenizer.bases_per_token_mean == a.tokenizer.bases_per_token_mean > 0  # recorded by the export
    assert b.tokenizer.text == (exported / "tokenizer.json").read_text()
    assert b.model_config["pad_token_id"] == a.tokenizer.pad_id
    assert {k: v for k, v in b.model_config.items() if k != "pad_token_id"} == \
        {k: v for k, v in a.model_config.items() if k != "pad_token_id"}
    assert b.kind == "import" and b.config["tokenizer_file"] == "tokenizer.json" and "stride" not in b.config
    assert (back / "tokenizer.json").is_file()
    seqs = random_dna(11)
    logits_a, enc_a = our_logits(our_mlm(run)[0], a.tokenizer, seqs)
    logits_b, enc_b = our_logits(our_mlm(back)[0], b.tokenizer, seqs)
    assert np.array_equal(enc_a.ids, enc_b.ids)
    assert_same_logits(logits_a, logits_b, enc_a.attention_mask)
    # Exported again, the tokenizer is the same file (the reading rules are not stacked twice).
    again = tmp_path / "again"
    hf.export_run(back, again)
    assert (again / "tokenizer.json").read_text() == (exported / "tokenizer.json").read_text()
    assert json.loads((again / "config.json").read_text())["randommask"]["type"] == "bpe"


def test_dnabert2_tokenizer_keeps_its_ids_through_pretrain_and_export(dnabert2_run: Path) -> None:
    exported = export_once(dnabert2_run)
    source = dnabert2_run.parent / "tokenizer" / "tokenizer.json"
    run = ckpt.open_run(dnabert2_run)
    tok = run.tokenizer
    order = dict(zip(DNABERT2_SPECIALS, range(5), strict=True))
    assert specials(tok) == tuple(order[t] for t in SPECIAL_TOKENS) == (3, 0, 1, 2, 4)  # [PAD] 3, [MASK] 4
    assert run.step == 3 and run.config["masking"]["strategy"] == "bert"
    assert tok.text == source.read_text()  # the run stores DNABERT-2's file as it was
    vocab = json.loads(source.read_text())["model"]["vocab"]
    assert tok.vocab == sorted(vocab, key=vocab.get) and tok.vocab_size == 100  # every id as in the file
    hf_tok = transformers.AutoTokenizer.from_pretrained(exported)
    assert hf_tok.mask_token_id == 4 and hf_tok.pad_token_id == 3 and hf_tok.cls_token_id == 1
    assert json.loads((exported / "config.json").read_text())["pad_token_id"] == 3
    assert "`[PAD]` = 3, `[UNK]` = 0, `[CLS]` = 1, `[SEP]` = 2, `[MASK]` = 4" in (exported / "README.md").read_text()
    # DNABERT-2's own file, read by transformers as DNABERT-2's users do, gives the run's ids on upper-case DNA.
    original = transformers.PreTrainedTokenizerFast(tokenizer_file=str(source), pad_token="[PAD]")
    seqs = [s[:150] for s in dna_strings(30)[20:]]  # strings the vocabulary was not learnt from
    enc = tok.encode_batch(seqs)
    assert np.array_equal(original(seqs, padding=True, return_tensors="np")["input_ids"], enc.ids)
    # A [MASK] in the input of the exported model is 4, where the run put it.
    masked = hf_tok(seqs[0][:20] + "[MASK]" + seqs[0][20:40])["input_ids"]
    assert masked.count(4) == 1


def test_bpe_import_errors(bpe_pre: Path, dnabert, tmp_path: Path, capsys) -> None:
    from tokenizers import Tokenizer, models, trainers

    exported = export_once(bpe_pre)
    out = str(tmp_path / "out")

    corrupt = copy_folder(exported, tmp_path / "corrupt", skip=("tokenizer.json",))
    (corrupt / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": ')
    msg = err(capsys, ["import", str(corrupt), out])
    assert "corrupt/tokenizer.json: not valid JSON" in msg, msg

    unigram = copy_folder(exported, tmp_path / "unigram", skip=("tokenizer.json",))
    Tokenizer(models.Unigram([("[PAD]", 0.0), ("A", -1.0)])).save(str(unigram / "tokenizer.json"))
    msg = err(capsys, ["import", str(unigram), out])
    assert "unigram/tokenizer.json: not a BPE tokenizer.json (model type 'Unigram')" in msg, msg

    words = copy_folder(exported, tmp_path / "words", skip=("tokenizer.json",))
    english = Tokenizer(models.BPE(unk_token="[UNK]"))
    english.train_from_iterator(["the cat sat on the mat"] * 5, trainers.BpeTrainer(
        vocab_size=40, special_tokens=list(SPECIAL_TOKENS), show_progress=False))
    english.save(str(words / "tokenizer.json"))
    msg = err(capsys, ["import", str(words), out])
    assert "words/tokenizer.json: token" in msg and "is not DNA" in msg, msg

    msg = err(capsys, ["import", str(exported), out, "--stride", "1"])
    assert "--stride is for k-mer vocabularies" in msg and "tokenizer.json is a BPE vocabulary" in msg, msg

    config = json.loads((exported / "config.json").read_text())
    for name, change, expect in [
        ("vocab-size", {"vocab_size": 300}, "vocab_size is 300, but tokenizer.json has 256 tokens"),
        ("mean", {"randommask": {**config["randommask"], "bases_per_token_mean": "many"}},
         "randommask.bases_per_token_mean is 'many'"),
    ]:
        bad = copy_folder(exported, tmp_path / name, skip=("config.json",))
        (bad / "config.json").write_text(json.dumps({**config, **change}))
        msg = err(capsys, ["import", str(bad), out])
        assert f"{name}/config.json" in msg and expect in msg, msg

    bare = copy_folder(exported, tmp_path / "bare", skip=("tokenizer.json",))
    assert "vocab.txt: not found" in err(capsys, ["import", str(bare), out])
    assert not (tmp_path / "out").exists()


def test_import_reads_vocab_txt_beside_a_wordpiece_tokenizer_json(dnabert, tmp_path: Path) -> None:
    """A k-mer folder saved by BertTokenizerFast also holds a WordPiece tokenizer.json: vocab.txt is read."""
    from tokenizers import Tokenizer, models

    folder, vocab = dnabert
    both = copy_folder(folder, tmp_path / "both")
    Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]")).save(
        str(both / "tokenizer.json"))
    out = tmp_path / "run"
    hf.import_hf(both, out)
    pre = ckpt.open_run(out)
    assert pre.tokenizer.kind == "kmer" and pre.tokenizer.vocab == vocab
