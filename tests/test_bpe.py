"""BPE vocabularies (`randommask.bpe`): reading tokenizer.json files, including broken and foreign ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bpe_fixtures import small_bpe
from randommask.bpe import BpeTokenizer
from randommask.cli import main
from randommask.errors import RandomMaskError
from randommask.tokens import SPECIAL_TOKENS
from realdata import GENOME, GUE

# ---- hostile tokenizer.json
# Every file below is refused with one line naming it and what is wrong (RandomMaskError; exit status 2 and
# one line on stderr at the CLI), or, for settings the package overrides, read safely.

PROM = GUE / "prom" / "prom_core_all"
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    """A real 256-token vocabulary learnt from the committed genome excerpt."""
    return small_bpe(tmp_path_factory.mktemp("bpe") / "tok") / "tokenizer.json"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> str:
    """A 24-token vocabulary: short enough text for many mutations a second."""
    return (small_bpe(tmp_path_factory.mktemp("bpe24") / "tok", vocab_size=24) / "tokenizer.json").read_text()


def _lib():
    import tokenizers

    return tokenizers


def wordpiece() -> str:
    lib = _lib()
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, "A", "C", "G", "T", "##A", "##C", "##G", "##T"])}
    return lib.Tokenizer(lib.models.WordPiece(vocab, unk_token="[UNK]")).to_str()


def english_bpe() -> str:
    lib = _lib()
    tok = lib.Tokenizer(lib.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = lib.pre_tokenizers.Whitespace()
    text = ["the quick brown fox jumps over the lazy dog", "a tokenizer for english text, not for dna"] * 20
    tok.train_from_iterator(text, lib.trainers.BpeTrainer(vocab_size=60, special_tokens=list(SPECIAL_TOKENS),
                                                          show_progress=False))
    return tok.to_str()


def dna_bpe_without_specials() -> str:
    lib = _lib()
    tok = lib.Tokenizer(lib.models.BPE())
    tok.train_from_iterator(["ACGTTGCAACGT" * 5] * 10, lib.trainers.BpeTrainer(vocab_size=12, show_progress=False))
    return tok.to_str()


def edited(text: str, edit) -> str:
    data = json.loads(text)
    edit(data)
    return json.dumps(data)


def add_token(data: dict, token: str) -> None:
    data["model"]["vocab"][token] = len(data["model"]["vocab"])


def move_id(data: dict) -> None:
    token = next(t for t, i in data["model"]["vocab"].items() if i == 20)
    data["model"]["vocab"][token] = 1000


def drop_mask(data: dict) -> None:
    del data["model"]["vocab"]["[MASK]"]
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] != "[MASK]"]


# name -> (the file's content from the valid text, what the message says)
HOSTILE = {
    "truncated JSON": (lambda t: t[: len(t) // 3], r"not a tokenizer\.json \(invalid JSON: .*line 1\)"),
    "binary garbage": (lambda t: bytes(range(256)) * 8, r"not a tokenizer\.json \(not UTF-8 text: byte 128"),
    "nested too deeply": (lambda t: "[" * 100_000, r"JSON nested too deeply"),
    "empty file": (lambda t: "", r"invalid JSON"),
    "a JSON list": (lambda t: "[1, 2]", r"not a BPE tokenizer\.json \(model type None\)"),
    "WordPiece model": (lambda t: wordpiece(), r"not a BPE tokenizer\.json \(model type 'WordPiece'\)"),
    "English-text BPE": (lambda t: english_bpe(), r"token '[^']+' is not DNA"),
    "non-DNA token": (lambda t: edited(t, lambda d: add_token(d, "ACGX")), r"token 'ACGX' is not DNA"),
    "no special tokens": (lambda t: dna_bpe_without_specials(), r"lacks the special token\(s\) \[PAD\], \[UNK\]"),
    "no [MASK]": (lambda t: edited(t, drop_mask), r"lacks the special token\(s\) \[MASK\];"),
    "gapped ids": (lambda t: edited(t, move_id), r"token ids are not 0\.\.\d+ without gaps \(no token has id 20\)"),
    "negative id": (lambda t: edited(t, lambda d: d["model"]["vocab"].update(TT=-3)), r"cannot read it \(.*-3"),
    "merge of unknown tokens": (lambda t: edited(t, lambda d: d["model"]["merges"].append(["QQ", "Z"])),
                                r"cannot read it \(Token `QQ` out of vocabulary"),
    "empty token": (lambda t: edited(t, lambda d: add_token(d, "")), r"holds an empty token \(id 256\)"),
    "BPE dropout": (lambda t: edited(t, lambda d: d["model"].update(dropout=0.3)), r"dropout 0\.3, which makes"),
    "lowercasing normalizer": (lambda t: edited(t, lambda d: d.update(normalizer={"type": "Lowercase"})),
                               r"do not spell DNA base by base \(\w+ is read as N+\)"),
    "no unknown token": (lambda t: edited(t, lambda d: d["model"].update(unk_token=None)),
                         r"do not spell DNA base by base .* unk_token"),
    "fused unknowns": (lambda t: edited(t, lambda d: d["model"].update(fuse_unk=True)),
                       r"do not spell DNA base by base .* fuse_unk"),
    "byte-level prefix space": (lambda t: edited(t, lambda d: d.update(pre_tokenizer={
        "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})),
        r"do not spell DNA base by base \(\w+ is read as N"),
}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_tokenizer_file_is_one_line_naming_it(case, valid, tmp_path, capsys):
    make, says = HOSTILE[case]
    content = make(valid.read_text())
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(RandomMaskError, match=says) as err:
        BpeTokenizer.from_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    # The same through the CLI, and through a folder holding the file.
    assert main(["finetune", "--from-scratch", "--tokenizer", f"bpe:{tmp_path}", str(PROM), "--out",
                 str(tmp_path / "out"), "--progress", "false"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and not (tmp_path / "out").exists()


def test_missing_file_and_bad_report_are_one_line(valid, tmp_path, capsys):
    with pytest.raises(RandomMaskError, match="tokenizer file not found"):
        BpeTokenizer.from_file(tmp_path / "nowhere.json")
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(valid.read_text())
    for report in ("not json", '{"heldout": {"bases_per_token": "many"}}', '{"heldout": {"bases_per_token": NaN}}',
                   '{"heldout": {"bases_per_token": -2}}', "[]"):
        (folder / "tokenizer-report.json").write_text(report)
        with pytest.raises(RandomMaskError, match=r"tokenizer-report\.json: not a tokenizer report"):
            BpeTokenizer.from_file(folder)
    assert main(["pretrain", "--tokenizer", f"bpe:{folder}", "--data.fasta", str(GENOME), "--out",
                 str(tmp_path / "run"), "--steps", "1", "--progress", "false"]) == 2
    assert "tokenizer-report.json: not a tokenizer report" in one_error_line(capsys)


def test_vocabulary_below_the_alphabet_at_the_cli(tmp_path, capsys):
    assert main(["tokenizer", "train", str(GENOME), "--vocab-size", "5", "--out", str(tmp_path / "t")]) == 2
    assert "--vocab-size 5 is below the alphabet" in one_error_line(capsys)
    assert not (tmp_path / "t").exists()


def test_settings_the_package_overrides_are_read_safely(valid):
    """A file asking the library to truncate or pad: the package encodes whole sequences itself."""
    seq = "ACGTTGCAAGGCTTAACCGGTTAAGCT" * 4
    plain = BpeTokenizer(valid.read_text(), source="plain").encode(seq)
    for key, value in (("truncation", {"direction": "Right", "max_length": 3, "strategy": "LongestFirst",
                                       "stride": 0}),
                       ("padding", {"strategy": {"Fixed": 200}, "direction": "Right", "pad_to_multiple_of": None,
                                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"})):
        tok = BpeTokenizer(edited(valid.read_text(), lambda d, k=key, v=value: d.update({k: v})), source=key)
        enc = tok.encode(seq)
        assert np.array_equal(enc.ids, plain.ids) and tok.decode(enc.ids[0]) == seq


def test_decoding_an_id_outside_the_vocabulary_is_an_error(valid):
    tok = BpeTokenizer.from_file(valid)
    for bad in (tok.vocab_size, -1):
        with pytest.raises(RandomMaskError, match=rf"token id {bad} is outside the vocabulary .* \(0\.\.255\)"):
            tok.decode([tok.cls_id, 5, bad])


# Mutations of a valid file: text cuts and edits, and edits of its JSON tree.
json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True)
                           | st.text(alphabet="ACGTN[]#acgt xyz", max_size=6),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=6)


@st.composite
def text_mutation(draw, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    kind = draw(st.sampled_from(["cut", "replace", "delete", "insert"]))
    if kind == "cut":
        return text[:at]
    if kind == "replace":
        return text[:at] + draw(st.characters()) + text[at + 1 :]
    if kind == "delete":
        return text[:at] + text[at + draw(st.integers(1, 40)) :]
    return text[:at] + draw(st.text(max_size=12)) + text[at:]


@st.composite
def tree_mutation(draw, text: str) -> str:
    data = json.loads(text)
    node, key = data, None  # the node to change is node[key]
    for _ in range(draw(st.integers(1, 5))):  # walk down to a random node
        child = node[key] if key is not None else node
        children = list(child) if isinstance(child, dict) else list(range(len(child))) if isinstance(child, list) \
            else []
        if not children:
            break
        node, key = child, draw(st.sampled_from(children))
        if draw(st.booleans()):
            break
    if key is None:
        return json.dumps(draw(json_values))
    kind = draw(st.sampled_from(["replace", "delete", "copy"]))
    if kind == "delete":
        del node[key]
    elif kind == "copy":  # another part of the file put here: plausible types, wrong content
        node[key] = copy.deepcopy(draw(st.sampled_from([data["model"]["vocab"], data["model"]["merges"],
                                                        data["added_tokens"], data["normalizer"], "[UNK]", 7])))
    else:
        node[key] = draw(json_values)
    return json.dumps(data)


def loads_or_refuses(text: str) -> BpeTokenizer | None:
    try:
        return BpeTokenizer(text, bases_per_token_mean=3.0, source="mutant.json")
    except RandomMaskError as e:  # any other exception fails the test
        assert str(e).startswith("mutant.json: ") and "\n" not in str(e), str(e)
        return None


@settings(max_examples=300, **SETTINGS)
@given(data=st.data(), seq=st.text(alphabet="ACGTN", max_size=60))
def test_a_mutated_file_loads_or_is_refused(small, data, seq):
    mutant = data.draw(st.one_of(text_mutation(small), tree_mutation(small)))
    tok = loads_or_refuses(mutant)
    event("loads" if tok is not None else "refused")
    if tok is not None:  # what loads spells DNA faithfully
        enc = tok.encode(seq)
        assert tok.decode(enc.ids[0]) == seq
        spans = enc.spans[0, 1 : int(enc.lengths[0]) + 1]
        assert spans[:, 0].tolist() == [0, *spans[:-1, 1].tolist()][: len(spans)]  # each token starts where
        assert spans[-1, 1] == len(seq) if seq else spans.size == 0  # the last ended, the last at the end


# Any DNA, soft-masked (lowercase) and with ambiguity codes: the same ids as transformers reading the file on its
# own. (U is left out: randommask reads it as T, the library as [UNK].)
dna_text = st.text(alphabet="ACGTNacgtnRYSWKMBDHVrykm", max_size=120)


@pytest.fixture(scope="module")
def both(valid):
    from transformers import PreTrainedTokenizerFast

    return BpeTokenizer.from_file(valid), PreTrainedTokenizerFast(tokenizer_file=str(valid))


@settings(max_examples=200, **SETTINGS)
@given(seqs=st.lists(dna_text, min_size=1, max_size=4))
def test_ids_match_transformers_and_decode_spells_the_bases(both, seqs):
    ours, hf = both
    enc = ours.encode_batch(seqs)
    for row, seq in enumerate(seqs):
        n = int(enc.lengths[row]) + 2
        assert enc.ids[row, :n].tolist() == hf(seq)["input_ids"]
        assert (enc.ids[row, n:] == ours.pad_id).all()
        expected = "".join(c if c in "ACGT" else "N" for c in seq.upper())
        assert ours.decode(enc.ids[row]) == expected
