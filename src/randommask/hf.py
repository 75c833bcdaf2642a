"""Hugging Face interoperability: ``randommask export`` and ``randommask import``.

export: a run folder (pre-trained, fine-tuned or imported) becomes a folder that ``transformers`` loads
with no custom code: ``config.json`` (a plain ``BertConfig``), ``model.safetensors``, the tokenizer's
files, and a model card ``README.md``. Our state-dict keys are HF's already (see `randommask.model`), so
the weights need no renaming, only the tied decoder aliases left out as HF does on disk. The tokenizer:

* k-mers: ``vocab.txt`` with ``tokenizer_config.json`` / ``special_tokens_map.json`` for ``BertTokenizer``
  (no lower-casing, no accent stripping, no CJK splitting, so that space-separated k-mers map to exactly
  our ids; the caller writes the k-mers, as DNABERT's users do);
* BPE (DNABERT-2's tokenizer): the run's ``tokenizer.json`` for ``PreTrainedTokenizerFast``, changed in
  two places so that raw DNA gives our ids with no help from randommask: a normalizer that reads the
  input as `randommask.alphabet` does (lowercase as uppercase, U as T, every other IUPAC ambiguity code
  as N), put before the file's own, and a post-processor that wraps ``[CLS] ... [SEP]`` with the file's
  own ids of those tokens (randommask adds them itself, so the stored file need not say it). No
  ``vocab.txt``: ``BertTokenizer`` would read one as WordPiece and give other ids.

import: the reverse, from a local ``BertForMaskedLM`` folder into a run folder whose
``checkpoints/step-0.pt`` every later command opens with `checkpoint.open_run`. The tokenizer comes from
a BPE ``tokenizer.json`` when the folder has one (an export of a BPE run; DNABERT-2's format), else from
a ``vocab.txt`` of k-mers in its own order (DNABERT's layout; a ``tokenizer.json`` of another model type
beside it, as ``BertTokenizerFast`` saves, is left alone). Either keeps its id order. For k-mers, k
comes from the k-mers, the stride from ``--stride`` (default: what an export recorded, else 1,
overlapping, as DNABERT); for BPE, the compression an export recorded is kept.

Both write into a temporary folder next to the output and rename it into place at the end, so a
failure leaves no half-written folder (and, with ``--force``, the old folder intact).

Nothing here imports ``transformers``: the files are written and read directly (a BPE ``tokenizer.json``
through `randommask.bpe`, which uses the ``tokenizers`` library that ``transformers`` itself uses).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from randommask import checkpoint as ckpt
from randommask.alphabet import BASES, CODE_TABLE, IUPAC_CODES
from randommask.bpe import TOKENIZER_FILE
from randommask.config import from_dict
from randommask.errors import RandomMaskError
from randommask.files import fsync_dir
from randommask.model import (
    BertForMaskedLM,
    BertForSequenceClassification,
    ModelConfig,
    hf_config_dict,
    hf_state_dict,
    load_hf_state_dict,
    num_parameters,
)
from randommask.tokenizers import SPECIAL_TOKENS, BpeTokenizer, KmerTokenizer, Tokenizer

__all__ = ["ExportConfig", "ImportConfig", "export_run", "import_hf"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# Keys of a BERT checkpoint that a masked-LM model has no use for (BertForPreTraining's NSP head, and
# the pooler that BertForMaskedLM does not build).
_DROPPED_PREFIXES = ("bert.pooler.", "pooler.", "cls.seq_relationship.")
_BERT_DEFAULTS: dict[str, Any] = {  # transformers.BertConfig's defaults, for keys a config.json leaves out
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}


# ------------------------------------------------------------------------------------------ configs
@dataclass
class ExportConfig:
    """Export a run folder to a Hugging Face transformers folder."""

    run: str = ""  # a randommask run folder
    out: str = ""  # the transformers folder to write (config.json, model.safetensors, vocab.txt or tokenizer.json)
    checkpoint: str | None = None  # a checkpoint of the run, a path or a name like step-500.pt (default: latest)
    force: bool = False  # replace a non-empty output folder


@dataclass
class ImportConfig:
    """Import a Hugging Face BertForMaskedLM folder (e.g. DNABERT) as a randommask run folder."""

    source: str = ""  # a transformers BertForMaskedLM folder (config.json, weights, a BPE tokenizer.json or vocab.txt)
    out: str = ""  # the randommask run folder to write
    stride: str | None = None  # k-mers only: 1 (overlapping, DNABERT) or k; default: as exported, else 1
    force: bool = False  # replace a non-empty output folder


# ------------------------------------------------------------------------------------------ output folders
def _check_out(out: Path, force: bool, inputs: list[Path]) -> None:
    """Refuse an output that is a file, a non-empty folder (without force), or holds an input."""
    if out.exists() and not out.is_dir():
        raise RandomMaskError(f"{out}: exists and is not a folder")
    res = out.resolve()
    for p in inputs:
        p = p.resolve()
        if res == p or res in p.parents:
            raise RandomMaskError(f"{out}: the output folder would replace the input {p}; choose another")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise RandomMaskError(f"{out}: folder exists and is not empty; pass --force to replace it")


def _staging(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder to ``out``; an old ``out`` is removed only once replaced."""
    old = None
    try:
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as e:
        if old is not None and not out.exists():
            os.replace(old, out)
        raise RandomMaskError(f"{out}: cannot move the finished folder into place ({e.strerror or e})") from None
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_folder(out: Path, force: bool, inputs: list[Path], fill: Any) -> None:
    _check_out(out, force, inputs)
    tmp = _staging(out)
    try:
        fill(tmp)
        _publish(tmp, out)
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot write ({e.strerror or e}); nothing was written") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------ export
def _id2label(state: dict, num_labels: int, path: Path) -> dict[int, str]:
    labels = state.get("labels")
    if labels is None:
        labels = (state.get("config") or {}).get("labels")
    if labels is None:
        return {i: f"LABEL_{i}" for i in range(num_labels)}
    if isinstance(labels, dict):
        try:
            out = {int(k): str(v) for k, v in labels.items()}
        except (TypeError, ValueError):
            raise RandomMaskError(f"{path}: labels {labels!r} are not a mapping of class ids to names") from None
    else:
        out = {i: str(v) for i, v in enumerate(labels)}
    if sorted(out) != list(range(num_labels)):
        raise RandomMaskError(f"{path}: {len(out)} labels for a classifier with {num_labels} classes")
    return out


def _is_bpe(tokenizer: Tokenizer) -> bool:
    return isinstance(tokenizer, BpeTokenizer)


def _reading_rules() -> list[dict[str, Any]]:
    """``Replace`` normalizers that read text as `randommask.alphabet` does: each IUPAC letter, in either
    case, becomes the letter of its base code (``a`` -> ``A``, ``u`` -> ``T``, ``R`` -> ``N``). Derived
    from ``CODE_TABLE``, so the exported tokenizer cannot drift from the package's one DNA reader."""
    rules = []
    for letter in IUPAC_CODES:
        for char in dict.fromkeys((letter, letter.lower())):
            target = BASES[CODE_TABLE[ord(char)]]
            if char != target:
                rules.append({"type": "Replace", "pattern": {"String": char}, "content": target})
    return rules


def _hf_tokenizer_json(tokenizer: BpeTokenizer) -> str:
    """The run's ``tokenizer.json`` as `transformers` must read it to give our ids from raw DNA.

    randommask reads the input (`randommask.tokens.code_matrix`) before the file's own normalizer and adds
    ``[CLS]`` / ``[SEP]`` itself; a file on its own must do both: our reading rules go first (kept once on
    a re-export), and the post-processor wraps with this vocabulary's ids of the two tokens (DNABERT-2's
    order has [CLS] = 1, ours 2). Special tokens are matched before normalizing (a ``[MASK]`` typed into the
    text stays one), and padding and truncation stored in the file are dropped: transformers sets them per
    call, and randommask never used them.
    """
    data = json.loads(tokenizer.text)
    rules, norm = _reading_rules(), data.get("normalizer")
    first = norm.get("normalizers", []) if isinstance(norm, dict) and norm.get("type") == "Sequence" else []
    if first[: len(rules)] != rules:
        data["normalizer"] = {"type": "Sequence", "normalizers": [*rules, *([norm] if norm else [])]}

    def special(name: str, type_id: int) -> dict:
        return {"SpecialToken": {"id": name, "type_id": type_id}}

    def seq(name: str, type_id: int) -> dict:
        return {"Sequence": {"id": name, "type_id": type_id}}

    cls, sep = SPECIAL_TOKENS[2], SPECIAL_TOKENS[3]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [special(cls, 0), seq("A", 0), special(sep, 0)],
        "pair": [special(cls, 0), seq("A", 0), special(sep, 0), seq("B", 1), special(sep, 1)],
        "special_tokens": {cls: {"id": cls, "ids": [tokenizer.cls_id], "tokens": [cls]},
                           sep: {"id": sep, "ids": [tokenizer.sep_id], "tokens": [sep]}},
    }
    for added in data.get("added_tokens") or []:
        if added.get("special"):  # matched on the raw text: the reading rules would spell [MASK] as [NANN]
            added["normalized"] = False
    data["truncation"] = data["padding"] = None
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _tokenizer_files(tokenizer: Tokenizer, max_len: int) -> dict[str, dict]:
    pad, unk, cls, sep, mask = SPECIAL_TOKENS
    specials = {"unk_token": unk, "sep_token": sep, "pad_token": pad, "cls_token": cls, "mask_token": mask}
    if _is_bpe(tokenizer):
        # tokenizer.json carries the whole pipeline; this names the special tokens (their ids are the file's)
        # and the longest input, as transformers' own fast tokenizers save it.
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            "model_max_length": max_len,
            "padding_side": "right",
            "truncation_side": "right",  # randommask truncates from the 3' end too
            "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
            **specials,
        }
        return {"tokenizer_config.json": config, "special_tokens_map.json": specials}
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": False,
        "do_basic_tokenize": True,
        "never_split": None,
        "tokenize_chinese_chars": False,
        "strip_accents": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        **specials,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": specials}


def _basename(value: Any) -> Any:
    if isinstance(value, str) and value:
        return Path(value).name
    if isinstance(value, list):
        return [_basename(v) for v in value]
    return value


def _public_config(config: dict) -> dict:
    """The run config with local paths cut to file names (a model card is often published)."""
    out = json.loads(json.dumps(config, default=str))
    for key in ("out_dir", "init_from", "model", "run", "source"):
        if key in out:
            out[key] = _basename(out[key])
    tok = out.get("tokenizer")
    if isinstance(tok, str) and tok.startswith("bpe:"):  # bpe:PATH, a tokenizer.json or its folder
        out["tokenizer"] = "bpe:" + Path(tok[4:]).name
    if isinstance(out.get("task"), str) and out["task"]:
        out["task"] = "/".join(Path(out["task"]).parts[-2:])  # a GUE task's name: group folder / task
    data = out.get("data")
    if isinstance(data, dict):
        for key in ("fasta", "store"):
            if key in data:
                data[key] = _basename(data[key])
    return out


def _masking_lines(config: dict) -> list[str]:
    from randommask.masking import MaskingConfig, describe_lines

    raw = dict(config.get("masking") or {})
    if not raw:
        return []
    try:
        m = from_dict(MaskingConfig, raw, "masking")
    except RandomMaskError:
        return [f"- Masking: `{raw.get('strategy', '?')}` (settings in the config below)"]
    return describe_lines(m)


def _bpe_widths(tokenizer: BpeTokenizer) -> tuple[int, int]:
    """The shortest and longest ordinary token, in bases."""
    widths = [len(tokenizer.vocab[i]) for i in tokenizer.kmer_ids]
    return min(widths), max(widths)


def _tokenizer_line(tokenizer: Tokenizer) -> str:
    if _is_bpe(tokenizer):
        lo, hi = _bpe_widths(tokenizer)
        mean = tokenizer.bases_per_token_mean
        return (f"- Tokenizer: `{tokenizer.name}`, byte-pair encoding (BPE, as DNABERT-2), {tokenizer.vocab_size} "
                f"tokens ({len(tokenizer.kmer_ids)} DNA strings of {lo} to {hi} bases and 5 special tokens)"
                + (f", {mean:.2f} bases per token on average" if mean > 0 else ""))
    k, s = tokenizer.bases_per_token, tokenizer.bases_between_tokens
    overlap = "overlapping" if s == 1 else "non-overlapping"
    return (f"- Tokenizer: `{tokenizer.name}`, {overlap} {k}-mers (stride {s}), "
            f"{tokenizer.vocab_size} tokens ({len(tokenizer.kmer_ids)} k-mers and 5 special tokens)")


def _how_trained(kind: str, config: dict, step: int, tokenizer: Tokenizer, mconf: ModelConfig,
                 n_params: int, extra: dict) -> list[str]:
    lines = [_tokenizer_line(tokenizer),
             f"- Model: BERT encoder, {mconf.num_layers} layers, hidden size {mconf.hidden_size}, "
             f"{mconf.num_heads} heads, feed-forward {mconf.intermediate_size}, up to "
             f"{mconf.max_position_embeddings} tokens, {n_params / 1e6:.2f}M parameters"
             + (f" (preset `{config['preset']}`)" if config.get("preset") else "")]
    if kind == "import":
        src = _basename(config.get("source", "")) or "a Hugging Face folder"
        lines.append(f"- Imported into randommask from `{src}` (a BertForMaskedLM folder) and exported again, "
                     "weights unchanged")
        return lines
    if kind == "finetune":
        task = extra.get("task") or _basename(config.get("task"))
        source = extra.get("source") or {}
        start = "from scratch" if source.get("from_scratch") else (
            f"from `{_basename(source['run'])}` ({source.get('kind', 'pretrain')}, step {source.get('step')})"
            if source.get("run") else "")
        lines.append("- Fine-tuned for sequence classification with `randommask finetune`"
                     + (f" on task `{task}`" if task else "") + (f", {start}" if start else "")
                     + f"; the checkpoint is the best on the dev set, at step {step}")
        if extra.get("max_length"):
            lines.append(f"- Inputs of up to {extra['max_length']} tokens during fine-tuning")
        return lines
    lines.extend(_masking_lines(config))
    total = config.get("steps")
    lines.append(f"- Steps: {step}" + (f" of {total} planned" if total and total != step else "")
                 + (f", {config['batch_size']} windows per micro-batch per rank" if "batch_size" in config else "")
                 + (f" x {config['grad_accum']} accumulation" if config.get("grad_accum", 1) != 1 else ""))
    optim = config.get("optim") or {}
    if optim:
        lines.append(f"- Optimizer: AdamW, peak learning rate {optim.get('lr')}, warm-up {optim.get('warmup_steps')} "
                     f"steps then linear decay, weight decay {optim.get('weight_decay')}")
    data = config.get("data") or {}
    if data:
        source = ", ".join(f"`{n}`" for n in _basename(data.get("fasta") or [])) or \
            (f"prepared store `{_basename(data['store'])}`" if data.get("store") else "(not recorded)")
        lines.append(f"- Data: {source}; windows of {data.get('max_tokens')} tokens, the last "
                     f"{data.get('heldout_fraction', 0):.0%} of every record held out for evaluation, "
                     f"reverse-complement probability {data.get('reverse_complement_prob', 0)}")
    return lines


def _kmer_input(tokenizer: Tokenizer, mconf: ModelConfig, auto: str) -> list[str]:
    """The model card's "Input" section for k-mers: the caller spells the k-mers, BertTokenizer maps them."""
    k, s = tokenizer.bases_per_token, tokenizer.bases_between_tokens
    max_bases = tokenizer.bases_for_tokens(mconf.max_position_embeddings - 2)
    stride_arg = "1" if s == 1 else '"k"'
    return [
        "## Input: from DNA to tokens", "",
        f"The model reads DNA as {'overlapping' if s == 1 else 'non-overlapping'} {k}-mers (one token starting "
        f"{'at every base' if s == 1 else f'every {s} bases'}), between `[CLS]` and `[SEP]`. A k-mer holding "
        "anything but A, C, G, T (such as N) is `[UNK]`. Input is upper case: the tokenizer does not change "
        f"case. At most {mconf.max_position_embeddings} tokens fit, i.e. {max_bases} bases.", "",
        "With randommask:", "", "```python", "import torch", f"from transformers import {auto}",
        "from randommask.tokenizers import KmerTokenizer", "",
        'MODEL = "path/to/this/folder"',
        f'tokenizer = KmerTokenizer.from_vocab_file(f"{{MODEL}}/vocab.txt", stride={stride_arg})',
        f"model = {auto}.from_pretrained(MODEL).eval()",
        'enc = tokenizer.encode("ACGTACGTTAGCCATG")',
        "with torch.no_grad():",
        "    out = model(input_ids=torch.from_numpy(enc.ids).long(),",
        "                attention_mask=torch.from_numpy(enc.attention_mask))",
        "```", "",
        "Without randommask (any BERT tokenizer from `transformers` reads the same ids):", "",
        "```python", f"from transformers import AutoTokenizer, {auto}", "",
        f"def to_kmers(seq: str, k: int = {k}, stride: int = {s}) -> str:",
        '    seq = seq.upper()',
        '    return " ".join(seq[i : i + k] for i in range(0, len(seq) - k + 1, stride))', "",
        'MODEL = "path/to/this/folder"',
        "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
        f"model = {auto}.from_pretrained(MODEL)",
        'inputs = tokenizer(to_kmers("ACGTACGTTAGCCATG"), return_tensors="pt")',
        "out = model(**inputs)",
        "```", "",
    ]


def _bpe_input(tokenizer: BpeTokenizer, mconf: ModelConfig, auto: str) -> list[str]:
    """The model card's "Input" section for BPE: ``tokenizer.json`` reads raw DNA, in transformers as here."""
    lo, hi = _bpe_widths(tokenizer)
    n_tokens = any("N" in tokenizer.vocab[i] for i in tokenizer.kmer_ids)
    fit = f"At most {mconf.max_position_embeddings} tokens fit"
    if tokenizer.bases_per_token_mean > 0:
        fit += (f", about {tokenizer.bases_for_tokens(mconf.max_position_embeddings - 2)} bases (3/4 of what the "
                "average compression gives, so that unusual DNA fits too)")
    return [
        "## Input: from DNA to tokens", "",
        f"The model reads DNA as BPE tokens: non-overlapping strings of {lo} to {hi} bases (a frequent string is "
        "one token, rare sequence is spelt in short pieces), between `[CLS]` and `[SEP]`. `tokenizer.json` reads "
        "lowercase as uppercase, U as T and every IUPAC ambiguity code as N; "
        + ("N is spelt by the tokens that hold it" if n_tokens else "each N is one `[UNK]`")
        + f". {fit}. Special token ids: " + ", ".join(
            f"`{t}` = {i}" for t, i in zip(SPECIAL_TOKENS, (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id,
                                                             tokenizer.sep_id, tokenizer.mask_id), strict=True))
        + ".", "",
        "With randommask:", "", "```python", "import torch", f"from transformers import {auto}",
        "from randommask.tokenizers import BpeTokenizer", "",
        'MODEL = "path/to/this/folder"',
        "tokenizer = BpeTokenizer.from_file(MODEL)  # its tokenizer.json",
        f"model = {auto}.from_pretrained(MODEL).eval()",
        'enc = tokenizer.encode("ACGTACGTTAGCCATG")',
        "with torch.no_grad():",
        "    out = model(input_ids=torch.from_numpy(enc.ids).long(),",
        "                attention_mask=torch.from_numpy(enc.attention_mask))",
        "```", "",
        "Without randommask (the same ids, from the same `tokenizer.json`):", "",
        "```python", f"from transformers import AutoTokenizer, {auto}", "",
        'MODEL = "path/to/this/folder"',
        "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
        f"model = {auto}.from_pretrained(MODEL)",
        'inputs = tokenizer("ACGTACGTTAGCCATG", return_tensors="pt")',
        "out = model(**inputs)",
        "```", "",
    ]


def _model_card(kind: str, config: dict, step: int, tokenizer: Tokenizer, mconf: ModelConfig,
                n_params: int, id2label: dict[int, str] | None, extra: dict) -> str:
    bpe = _is_bpe(tokenizer)
    classify = id2label is not None
    auto = "AutoModelForSequenceClassification" if classify else "AutoModelForMaskedLM"
    tags = ["dna", "genomics", "biology", "bpe" if bpe else "kmer", "randommask"]
    head = ["---", "library_name: transformers", f"pipeline_tag: {'text-classification' if classify else 'fill-mask'}",
            "tags:", *[f"- {t}" for t in tags], "---", ""]
    title = "DNA sequence classifier" if classify else "DNA language model"
    over = "BPE tokens (byte-pair encoding, as DNABERT-2)" if bpe else f"{tokenizer.bases_per_token}-mer tokens"
    body = [f"# {title} ({tokenizer.name}, trained with randommask)", "",
            f"A BERT-style {'classifier' if classify else 'masked language model'} of DNA over {over}, "
            "trained with randommask and exported as a plain `transformers` "
            f"`{'BertForSequenceClassification' if classify else 'BertForMaskedLM'}` (no custom code, no "
            "`trust_remote_code`).", "", "## How it was trained", "",
            *_how_trained(kind, config, step, tokenizer, mconf, n_params, extra), ""]
    if classify:
        body += ["Classes: " + ", ".join(f"{i} = `{name}`" for i, name in sorted(id2label.items())), ""]
    body += _bpe_input(tokenizer, mconf, auto) if bpe else _kmer_input(tokenizer, mconf, auto)
    body += ["## Run config", "", "The effective config of the run (local paths cut to file names):", "",
             "```json", json.dumps(_public_config(config), indent=2, default=str), "```", ""]
    return "\n".join(head + body)


def export_run(run: str | Path, out: str | Path, checkpoint: str | None = None, force: bool = False) -> Path:
    """Write ``out``, a transformers folder of the run's checkpoint (default: its latest)."""
    from safetensors.torch import save_file

    run_dir, out = Path(run), Path(out)
    _check_out(out, force, [run_dir])
    opened = ckpt.open_run(run_dir, checkpoint)
    path, state, tokenizer = opened.checkpoint, opened.state, opened.tokenizer
    try:
        mconf = ModelConfig.from_dict(state["model_config"])
    except RandomMaskError as e:
        raise RandomMaskError(f"{path}: {e}") from None
    sd = state["model"]
    kind = state.get("kind") or ("finetune" if "classifier.weight" in sd else "pretrain")
    classify = kind == "finetune" or "classifier.weight" in sd
    model = BertForSequenceClassification(mconf) if classify else BertForMaskedLM(mconf)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise RandomMaskError(f"{path}: model weights do not match its model_config "
                              f"({str(e).splitlines()[0]})") from None
    if mconf.vocab_size != tokenizer.vocab_size:
        raise RandomMaskError(f"{path}: model vocabulary {mconf.vocab_size} != tokenizer vocabulary "
                              f"{tokenizer.vocab_size}")
    tensors = {k: v.contiguous().clone() for k, v in hf_state_dict(model, include_tied=False).items()}
    id2label = _id2label(state, mconf.num_labels, path) if classify else None
    hf_config = {
        "architectures": ["BertForSequenceClassification" if classify else "BertForMaskedLM"],
        "model_type": "bert",
        **hf_config_dict(mconf),
        "pad_token_id": tokenizer.pad_id,
        "tie_word_embeddings": True,
        "torch_dtype": str(next(iter(tensors.values())).dtype).replace("torch.", ""),
    }
    if classify:
        del hf_config["num_labels"]  # id2label says it; both would have to agree
        hf_config["id2label"] = {str(i): name for i, name in sorted(id2label.items())}
        hf_config["label2id"] = {name: i for i, name in sorted(id2label.items())}
    # What an import needs and HF has no field for (transformers keeps unknown keys as they are).
    if _is_bpe(tokenizer):  # the vocabulary is tokenizer.json; the compression sizes windows in bases
        hf_config["randommask"] = {"tokenizer": tokenizer.name, "type": "bpe",
                                   "bases_per_token_mean": tokenizer.bases_per_token_mean, "kind": kind,
                                   "step": int(state.get("step", 0))}
    else:
        hf_config["randommask"] = {"tokenizer": tokenizer.name, "k": tokenizer.bases_per_token,
                                   "stride": tokenizer.bases_between_tokens, "kind": kind,
                                   "step": int(state.get("step", 0))}
    config = dict(state.get("config") or {})
    card = _model_card(kind, config, int(state.get("step", 0)), tokenizer, mconf, num_parameters(model), id2label,
                       state)

    def fill(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        shutil.copymode(tmp / "config.json", tmp / "model.safetensors")  # safetensors writes it owner-only
        if _is_bpe(tokenizer):
            (tmp / TOKENIZER_FILE).write_text(_hf_tokenizer_json(tokenizer), encoding="utf-8")
        else:
            tokenizer.save_vocab(tmp / "vocab.txt")
        for name, content in _tokenizer_files(tokenizer, mconf.max_position_embeddings).items():
            (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
        (tmp / "README.md").write_text(card)

    _write_folder(out, force, [run_dir], fill)
    return out


# ------------------------------------------------------------------------------------------ import
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RandomMaskError(f"{path}: not found; a Hugging Face model folder needs it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RandomMaskError(f"{path}: cannot read ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise RandomMaskError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise RandomMaskError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RandomMaskError(f"{path}: weights file not found") from None
    except Exception as e:  # truncated, foreign, or a pickle that is not plain tensors
        raise RandomMaskError(f"{path}: cannot read the weights ({e.__class__.__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise RandomMaskError(f"{path}: not a state dict of tensors")
    return sd


def _load_weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return path, _load_weight_file(path)
        index = _read_json(path).get("weight_map")
        if not isinstance(index, dict):
            raise RandomMaskError(f"{path}: no weight_map in the shard index")
        sd: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index.values())):
            sd.update(_load_weight_file(folder / shard))
        return path, sd
    other = [p.name for p in folder.glob("*") if p.suffix in (".h5", ".msgpack", ".ckpt", ".index")]
    hint = f" (found {', '.join(sorted(other))}: convert them to PyTorch weights first)" if other else ""
    raise RandomMaskError(f"{folder}: no model weights; expected {' or '.join(WEIGHT_FILES[::2])}{hint}")


def _hf_model_config(cfg_path: Path, cfg: dict, tokenizer: Tokenizer, vocab_file: str = "vocab.txt") -> ModelConfig:
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if model_type is None and not (archs and all(str(a).startswith("Bert") for a in archs)):
        raise RandomMaskError(f"{cfg_path}: no model_type; randommask import reads BERT models (model_type bert)")
    if model_type is not None and model_type != "bert":
        raise RandomMaskError(f"{cfg_path}: model_type is {model_type!r}, not 'bert'; randommask import reads "
                              "BERT models only")
    v = {**_BERT_DEFAULTS, **cfg}
    if v["hidden_act"] != "gelu":
        raise RandomMaskError(f"{cfg_path}: hidden_act is {v['hidden_act']!r}; randommask's BERT uses the exact "
                              "(erf) GELU, hidden_act 'gelu', only")
    if v.get("position_embedding_type", "absolute") != "absolute":
        raise RandomMaskError(f"{cfg_path}: position_embedding_type is {v['position_embedding_type']!r}; only "
                              "'absolute' is supported")
    if v.get("is_decoder") or v.get("add_cross_attention"):
        raise RandomMaskError(f"{cfg_path}: a decoder BERT (is_decoder / add_cross_attention) is not supported")
    if v["vocab_size"] != tokenizer.vocab_size:
        raise RandomMaskError(f"{cfg_path}: vocab_size is {v['vocab_size']}, but {vocab_file} has "
                              f"{tokenizer.vocab_size} tokens")
    num_labels = len(v["id2label"]) if isinstance(v.get("id2label"), dict) else int(v.get("num_labels", 2))
    try:
        return ModelConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=v["hidden_size"], num_layers=v["num_hidden_layers"],
            num_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
            max_position_embeddings=v["max_position_embeddings"], type_vocab_size=v["type_vocab_size"],
            layer_norm_eps=v["layer_norm_eps"], hidden_dropout=v["hidden_dropout_prob"],
            attention_dropout=v["attention_probs_dropout_prob"], initializer_range=v["initializer_range"],
            pad_token_id=tokenizer.pad_id, num_labels=max(num_labels, 1),
            pad_vocab_multiple=64)  # as `randommask pretrain` builds its models (the padding stays invisible)
    except RandomMaskError as e:
        raise RandomMaskError(f"{cfg_path}: {e}") from None


def _stride(value: Any, k: int, recorded: Any) -> int:
    if value is None:
        value = recorded if recorded in (1, k) else 1
    text = str(value).strip()
    if text == "1":
        return 1
    if text in ("k", str(k)):
        return k
    raise RandomMaskError(f"--stride must be 1 (overlapping) or k (non-overlapping, here {k}), got {value!r}")


def _bpe_mean(cfg_path: Path, recorded: dict) -> float:
    """The compression an export recorded (0: none), so that an imported BPE run sizes windows as before."""
    if recorded.get("type") != "bpe" or recorded.get("bases_per_token_mean") is None:
        return 0.0
    value = recorded["bases_per_token_mean"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise RandomMaskError(f"{cfg_path}: randommask.bases_per_token_mean is {value!r}, not a number of bases "
                              "(0 or more)")
    return float(value)


def _hf_tokenizer(folder: Path, stride: Any, cfg_path: Path, recorded: dict) -> tuple[Tokenizer, str]:
    """The folder's tokenizer and the file it came from: a BPE ``tokenizer.json`` if there is one (an export
    of a BPE run, DNABERT-2's format), else the k-mer ``vocab.txt`` (DNABERT's format).

    A ``tokenizer.json`` of another model type beside a ``vocab.txt`` is what ``BertTokenizerFast`` saves
    for a k-mer model: the vocab.txt is read. Alone, or unreadable, it is an error naming it.
    """
    json_path, vocab_path = folder / TOKENIZER_FILE, folder / "vocab.txt"
    if json_path.is_file():
        model = _read_json(json_path).get("model")
        model_type = model.get("type") if isinstance(model, dict) else None
        if model_type == "BPE" or not vocab_path.is_file():
            tokenizer = BpeTokenizer.from_file(json_path)  # a foreign file fails here, naming itself
            if stride is not None:
                raise RandomMaskError(f"--stride is for k-mer vocabularies; {json_path} is a BPE vocabulary, "
                                      "whose tokens do not overlap")
            if tokenizer.bases_per_token_mean <= 0:
                tokenizer = BpeTokenizer(tokenizer.text, _bpe_mean(cfg_path, recorded), source=str(json_path))
            return tokenizer, TOKENIZER_FILE
    if not vocab_path.is_file():
        raise RandomMaskError(f"{vocab_path}: not found; randommask import needs the k-mer vocabulary (or a BPE "
                              f"{TOKENIZER_FILE})")
    # A BERT vocab.txt of k-mers (DNABERT's format): k and the id order, or a clear error.
    probe = KmerTokenizer.from_vocab_file(vocab_path)
    k = probe.bases_per_token
    return probe.with_params(stride=_stride(stride, k, recorded.get("stride"))), "vocab.txt"


def import_hf(source: str | Path, out: str | Path, stride: Any = None, force: bool = False) -> Path:
    """Write ``out``, a randommask run folder holding the weights of a transformers BertForMaskedLM folder."""
    folder, out = Path(source), Path(out)
    if not folder.is_dir():
        raise RandomMaskError(f"{folder}: folder not found")
    _check_out(out, force, [folder])
    cfg_path = folder / "config.json"
    hf_cfg = _read_json(cfg_path)
    recorded = hf_cfg.get("randommask") if isinstance(hf_cfg.get("randommask"), dict) else {}
    tokenizer, vocab_file = _hf_tokenizer(folder, stride, cfg_path, recorded)
    mconf = _hf_model_config(cfg_path, hf_cfg, tokenizer, vocab_file)
    weights_path, raw = _load_weights(folder)

    emb = [key for key in raw if key.endswith("embeddings.word_embeddings.weight")]
    if not emb:
        raise RandomMaskError(f"{weights_path}: no embeddings.word_embeddings.weight; not BERT weights")
    rows = raw[emb[0]].shape[0]
    if rows != tokenizer.vocab_size:
        raise RandomMaskError(f"{weights_path}: word embeddings have {rows} rows, but {vocab_file} has "
                              f"{tokenizer.vocab_size} tokens")
    if not any(key.startswith("cls.predictions.") for key in raw):
        raise RandomMaskError(f"{weights_path}: no masked-LM head (cls.predictions.*); randommask import takes a "
                              "BertForMaskedLM folder")
    sd = {key: t for key, t in raw.items() if not key.startswith(_DROPPED_PREFIXES)}
    model = BertForMaskedLM(mconf)
    try:
        load_hf_state_dict(model, sd)
    except RandomMaskError as e:
        raise RandomMaskError(f"{weights_path}: {e}") from None

    reading = {"tokenizer_file": vocab_file} if _is_bpe(tokenizer) else {"stride": tokenizer.bases_between_tokens}
    config = {"kind": "import", "source": str(folder.resolve()), "weights": weights_path.name,
              "tokenizer": tokenizer.name, **reading, "hf_config": hf_cfg}
    state = {"step": 0, "model": model.state_dict(), "model_config": mconf.to_dict(),
             "tokenizer": tokenizer.spec, "vocab": list(tokenizer.vocab), "config": config, "kind": "import"}

    def fill(tmp: Path) -> None:
        import yaml

        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        tokenizer.save_vocab(tmp / "vocab.txt")
        ckpt.save_checkpoint(tmp, 0, state, keep=0)

    _write_folder(out, force, [folder], fill)
    return out


# ------------------------------------------------------------------------------------------ CLI
