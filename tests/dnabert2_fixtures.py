"""A ``tokenizer.json`` in DNABERT-2's format, built here with the ``tokenizers`` library (no download).

DNABERT-2 (zhihan1996/DNABERT-2-117M) ships one ``tokenizer.json``: a BPE model with ``unk_token`` "[UNK]",
its special tokens first in THEIR order ([UNK]=0, [CLS]=1, [SEP]=2, [PAD]=3, [MASK]=4, not randommask's
[PAD]=0 [UNK]=1 ...), a ``Whitespace`` pre-tokenizer, no normalizer (lowercase is not read as uppercase),
and a ``TemplateProcessing`` post-processor "[CLS] $A [SEP]". The file built here has the same layout, with
a vocabulary learnt by ``BpeTrainer`` from a few strings of the committed genome excerpt, so that a test can
check that randommask keeps those ids through pre-training, export and import.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from realdata import GENOME

DNABERT2_SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")


def dna_strings(n: int = 20, length: int = 500) -> list[str]:
    """``n`` strings of A, C, G, T (``length`` bases each) from the excerpt, runs of N left out."""
    with gzip.open(GENOME, "rt") as f:
        text = "".join(line.strip() for line in f if not line.startswith(">")).upper()
    pieces = [p for p in text.split("N") if len(p) >= length]
    strings = [p[i : i + length] for p in pieces for i in range(0, len(p) - length + 1, length)]
    return strings[:n]


def dnabert2_tokenizer(folder: Path, vocab_size: int = 100) -> Path:
    """``folder`` holding a DNABERT-2-style ``tokenizer.json`` of ``vocab_size`` tokens (an odd size on
    purpose: the model pads its vocabulary to a multiple of 64, the export must cut the padding)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(DNABERT2_SPECIALS), show_progress=False)
    tok.train_from_iterator(dna_strings(), trainer)
    ids = {t: tok.token_to_id(t) for t in DNABERT2_SPECIALS}
    assert list(ids.values()) == [0, 1, 2, 3, 4], ids  # the helper's promise: DNABERT-2's ids
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder
