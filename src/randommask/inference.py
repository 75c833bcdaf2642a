"""Using a run folder on new sequences: ``randommask predict`` and ``randommask embed``.

Input is a FASTA file (plain, gzip or bgzip; one sequence per record, named by the first word of its
header) or a CSV file with a ``sequence`` column (``id`` or ``name`` gives the ids, else the 0-based
row number; a ``label`` column is copied to the predictions, and scored when it holds integers).

* ``predict`` needs a fine-tuned run (``randommask finetune``) and writes a CSV: id, label (if given),
  predicted_label, one probability column per class (``prob_0``, ``prob_1``, ...), the sequence length,
  the number of windows and a truncation flag.
* ``embed`` takes any run folder (pre-trained or fine-tuned) and writes a float32 ``.npy`` matrix
  [sequences, hidden size] plus ``<name>.ids.tsv`` (row index, id, length, windows, truncated). The
  embedding of a sequence is the mean of the chosen layer's hidden states over its real tokens
  (``[CLS]`` and ``[SEP]`` included, padding excluded; ``--pooling mean``, the default) or its ``[CLS]``
  vector (``--pooling cls``).

Sequences longer than the model's maximum (``--max-length`` tokens; by default the fine-tuned run's
training length for predict, the model's position count for embed) are handled by ``--long``:

* ``truncate`` (default): only the first bases that fit are read (the 3' end is dropped);
* ``windows``: the sequence is cut into windows that fit, overlapping by ``--window-overlap`` bases
  (default: a quarter of a window); embeddings are pooled over all windows' tokens (mean pooling) or
  averaged over windows ([CLS]), probabilities are averaged over windows.

Either way the command reports how many sequences were longer than the maximum; nothing is cut
silently. Windows are cut in bases (``bases_for_tokens``): exact for k-mers, while a BPE vocabulary's
tokens vary in width, so a window of unusually incompressible DNA can still give more tokens than the
maximum. Such a window is encoded up to the maximum (its 3' end cut), counted in the report line, and
its sequence is marked truncated unless another window reads the bases it lost. Both commands run in
batches on CPU or GPU (bf16 autocast on CUDA) with a progress bar.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from randommask.alphabet import str_to_codes
from randommask.checkpoint import open_run
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_bytes, atomic_write_text
from randommask.metrics import classification_metrics
from randommask.model import BertEncoderModel, BertForSequenceClassification, ModelConfig, load_hf_state_dict
from randommask.runtime import autocast_for, pick_device
from randommask.tokenizers import Tokenizer

__all__ = [
    "EmbedConfig",
    "PredictConfig",
    "Sequences",
    "WindowPlan",
    "embed",
    "plan_windows",
    "predict",
    "read_sequences",
]

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".seq")


# ------------------------------------------------------------------------------------------ configs
@dataclass
class InferenceOptions:
    """What predict and embed share."""

    model: str = ""  # a run folder
    input: str = ""  # FASTA or CSV (a `sequence` column)
    out: str = ""  # default: <input name>.predictions.csv / .embeddings.npy in the current folder
    long: str = "truncate"  # truncate or windows (see the module docstring)
    window_overlap: int | None = None  # bases shared by neighbouring windows; default a quarter window
    max_length: int | None = None  # tokens per input, [CLS] and [SEP] included
    tokenizer_stride: int | None = None  # read with another stride than the run's (1 or k)
    batch_size: int = 64  # sequences per forward pass
    device: str = "auto"  # auto, cpu or cuda
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        if not self.model:
            raise RandomMaskError("give a run folder (MODEL)")
        if not self.input:
            raise RandomMaskError("give an input file (INPUT): FASTA, or CSV with a `sequence` column")
        if self.long not in ("truncate", "windows"):
            raise RandomMaskError(f"--long must be truncate or windows, got {self.long!r}")
        if self.batch_size < 1:
            raise RandomMaskError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_length is not None and self.max_length < 3:
            raise RandomMaskError(f"max_length must be at least 3, got {self.max_length}")
        if self.window_overlap is not None and self.window_overlap < 0:
            raise RandomMaskError(f"window_overlap must be 0 or more, got {self.window_overlap}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise RandomMaskError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class PredictConfig(InferenceOptions):
    """Class probabilities of a fine-tuned run for every sequence of a FASTA or CSV file."""


@dataclass
class EmbedConfig(InferenceOptions):
    """Sequence embeddings from any run folder."""

    pooling: str = "mean"  # mean (over real tokens) or cls
    layer: int = -1  # hidden state to pool: 0 = embeddings output, 1..L = layers, -1 = last

    def validate(self) -> None:
        super().validate()
        if self.pooling not in ("mean", "cls"):
            raise RandomMaskError(f"--pooling must be mean or cls, got {self.pooling!r}")


# ------------------------------------------------------------------------------------------ input
@dataclass
class Sequences:
    """Sequences as uint8 base codes, with ids and (CSV only) labels as written in the file."""

    ids: list[str]
    codes: list[np.ndarray]
    labels: list[str] | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((c.shape[0] for c in self.codes), dtype=np.int64, count=len(self.codes))


def _is_fasta(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz").removesuffix(".bgz")
    if name.endswith(".csv"):
        return False
    if name.endswith(FASTA_SUFFIXES):
        return True
    opener = gzip.open if path.name.lower().endswith((".gz", ".bgz")) else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError as e:
        raise RandomMaskError(f"{path}: cannot read ({e.strerror or e})") from None
    return head.startswith(b">")


def read_sequences(path: str | Path) -> Sequences:
    """Read a FASTA file or a CSV file with a ``sequence`` column (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise RandomMaskError(f"{path}: input file not found" if not path.exists() else f"{path}: not a file")
    if _is_fasta(path):
        from randommask.genome import read_fasta

        ids, codes = [], []
        for name, seq in read_fasta(path):
            ids.append(name)
            codes.append(seq)
        if not ids:
            raise RandomMaskError(f"{path}: no FASTA records")
        return Sequences(ids, codes)
    return _read_csv(path)


def _read_csv(path: Path) -> Sequences:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise RandomMaskError(f"{path}: cannot read ({e.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise RandomMaskError(f"{path}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "sequence" not in header:
        raise RandomMaskError(f"{path}, line 1: no `sequence` column in the header {','.join(header)!r}; give a "
                              "CSV with a sequence column (or a FASTA file)")
    col_seq = header.index("sequence")
    col_id = header.index("id") if "id" in header else header.index("name") if "name" in header else None
    col_label = header.index("label") if "label" in header else None
    ids, codes, labels = [], [], []
    for row in reader:
        if not row or not any(x.strip() for x in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise RandomMaskError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        seq = row[col_seq].strip()
        if not seq:
            raise RandomMaskError(f"{path}, line {line}: empty sequence")
        codes.append(str_to_codes(seq, where=f"{path}, line {line}"))
        ids.append(row[col_id].strip() if col_id is not None else str(len(ids)))
        if col_label is not None:
            labels.append(row[col_label].strip())
    if not codes:
        raise RandomMaskError(f"{path}: no data rows after the header")
    return Sequences(ids, codes, labels if col_label is not None else None)


# ------------------------------------------------------------------------------------------ windows
@dataclass
class WindowPlan:
    """Which bases of which sequence each model input reads.

    record/start/end: per window, the sequence index and the half-open base range.
    windows: per sequence, how many windows; too_long: per sequence, longer than one input holds.
    window_nt: the most bases one input holds.
    read_end: per window, where the bases its tokens cover end, once encoded (`_run_windows` sets it):
        ``end`` unless the window gave more tokens than the maximum (BPE) and lost its 3' end; None before.
    """

    record: np.ndarray
    start: np.ndarray
    end: np.ndarray
    windows: np.ndarray
    too_long: np.ndarray
    window_nt: int
    overlap: int
    read_end: np.ndarray | None = None

    @property
    def overflowed(self) -> np.ndarray:
        """Per window: encoding cut its 3' end (more tokens than the maximum)."""
        return np.zeros(self.record.shape[0], bool) if self.read_end is None else self.read_end < self.end

    @property
    def truncated(self) -> np.ndarray:
        """Sequences of which some bases were never read: cut by --long truncate, or by a window's encoding
        when no other window read the bases it lost."""
        cut = self.too_long & (self.windows == 1)
        over = self.overflowed
        if not over.any():
            return cut
        assert self.read_end is not None
        lengths = np.zeros(self.windows.shape[0], np.int64)
        np.maximum.at(lengths, self.record, self.end)
        for r in np.unique(self.record[over]).tolist():
            sel = np.flatnonzero(self.record == r)
            order = sel[np.argsort(self.start[sel], kind="stable")]
            covered = 0  # bases 0..covered-1 read so far, windows taken by their starts
            for w in order.tolist():
                if self.start[w] > covered:
                    break
                covered = max(covered, int(self.read_end[w]))
            cut[r] |= covered < lengths[r]
        return cut


def plan_windows(lengths: np.ndarray, tokenizer: Tokenizer, max_length: int, long: str,
                 overlap: int | None = None) -> WindowPlan:
    """Cut sequences into model inputs of at most ``max_length`` tokens (see the module docstring)."""
    window_nt = tokenizer.bases_for_tokens(max_length - 2)
    if overlap is None:
        overlap = max(window_nt // 4, tokenizer.bases_per_token - 1)
    if long == "windows" and overlap >= window_nt:
        raise RandomMaskError(f"window_overlap {overlap} must be smaller than a window ({window_nt} bases)")
    # With overlapping k-mers, windows sharing k - 1 bases lose no k-mer at a seam; a step that is a
    # multiple of the stride keeps non-overlapping k-mers in the same frame in every window.
    hop = tokenizer.bases_between_tokens
    step = max(hop, (window_nt - overlap) // hop * hop)
    record, start, end, windows = [], [], [], []
    for i, n in enumerate(np.asarray(lengths, dtype=np.int64).tolist()):
        if n <= window_nt or long == "truncate":
            starts = [0]
        else:
            starts = list(range(0, n - window_nt + 1, step))
            if starts[-1] + window_nt < n:
                starts.append(n - window_nt)  # the last window ends on the last base
        record += [i] * len(starts)
        start += starts
        end += [min(s + window_nt, n) for s in starts]
        windows.append(len(starts))
    return WindowPlan(np.asarray(record, np.int64), np.asarray(start, np.int64), np.asarray(end, np.int64),
                      np.asarray(windows, np.int64), np.asarray(lengths) > window_nt, window_nt, overlap)


def _run_windows(seqs: Sequences, plan: WindowPlan, tok: Tokenizer, max_length: int, batch_size: int,
                 device: torch.device, progress: bool, desc: str,
                 fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """Weighted mean per sequence of ``fn``'s per-window values: fn(ids, mask) -> (values [B, D], weights [B]).

    Sets ``plan.read_end``: a window whose tokens exceed ``max_length`` (BPE, incompressible DNA) is
    encoded up to it, and where its tokens then end in bases is recorded, so the cut is reported."""
    n_win = plan.record.shape[0]
    plan.read_end = plan.end.copy()
    sums: np.ndarray | None = None
    weights = np.zeros(len(seqs.codes), dtype=np.float64)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_win, unit="seq" if n_win == len(seqs.codes) else "window", desc=desc, dynamic_ncols=True)
    autocast = autocast_for(device)
    with torch.no_grad():
        for b in range(0, n_win, batch_size):
            sl = slice(b, min(b + batch_size, n_win))
            rec = plan.record[sl]
            parts = [seqs.codes[r][s:e] for r, s, e in zip(rec, plan.start[sl], plan.end[sl], strict=True)]
            enc = tok.encode_batch(parts)
            if int(enc.lengths.max(initial=0)) + 2 > max_length:  # never for k-mers: windows are cut to fit
                over = np.flatnonzero(enc.lengths + 2 > max_length)
                enc = tok.encode_batch(parts, max_length=max_length, truncation=True)
                plan.read_end[sl.start + over] = plan.start[sl.start + over] + enc.spans[over, max_length - 2, 1]
            ids = torch.from_numpy(enc.ids).to(device).long()
            mask = torch.from_numpy(enc.attention_mask).to(device)
            with autocast():
                values, w = fn(ids, mask)
            values = values.float().cpu().numpy().astype(np.float64)
            w = w.float().cpu().numpy().astype(np.float64)
            if sums is None:
                sums = np.zeros((len(seqs.codes), values.shape[1]), dtype=np.float64)
            np.add.at(sums, rec, values * w[:, None])
            np.add.at(weights, rec, w)
            if bar:
                bar.update(sl.stop - sl.start)
    if bar:
        bar.close()
    assert sums is not None
    return sums / weights[:, None]


def _report_long(plan: WindowPlan, max_length: int, long: str) -> list[str]:
    """The note lines on long sequences and on windows cut by their encoding (none when all was read)."""
    notes = []
    n_long, n = int(plan.too_long.sum()), plan.too_long.shape[0]
    if n_long:
        head = (f"{n_long} of {n} sequences are longer than the model's maximum of {max_length} tokens "
                f"({plan.window_nt} nt)")
        if long == "truncate":
            notes.append(f"{head}: read only their first {plan.window_nt} nt (--long windows to read them whole)")
        else:
            notes.append(f"{head}: read whole in {int(plan.windows[plan.too_long].sum())} windows of "
                         f"{plan.window_nt} nt overlapping by {plan.overlap} nt")
    over = plan.overflowed
    if over.any():
        assert plan.read_end is not None
        lost = np.unique(plan.record[over])
        notes.append(f"{int(over.sum())} window(s) of {lost.size} sequence(s) gave more than {max_length} tokens "
                     f"(DNA the vocabulary compresses less than usual): encoded up to the maximum, "
                     f"{int((plan.end - plan.read_end)[over].sum())} bases cut from their 3' ends; "
                     f"{int(plan.truncated[lost].sum())} of these sequences have bases no window read "
                     "(marked truncated)")
    return notes


def _with_stride(tok: Tokenizer, stride: int | None, what: str) -> Tokenizer:
    """The tokenizer read with ``stride``; a stride it cannot take (any, for BPE) is one line naming the option."""
    try:
        return tok.with_params(stride=stride)
    except RandomMaskError as e:
        raise RandomMaskError(f"--tokenizer-stride {stride}: {what}; {e}") from None


def _max_length(opt: InferenceOptions, default: int, positions: int) -> int:
    if opt.max_length is None:
        return min(default, positions)
    if opt.max_length > positions:
        raise RandomMaskError(f"max_length {opt.max_length} is more than the model's {positions} positions")
    return opt.max_length


def _out_path(opt: InferenceOptions, suffix: str) -> Path:
    if opt.out:
        return Path(opt.out)
    name = Path(opt.input).name
    for ext in (".gz", ".bgz", ".csv", *FASTA_SUFFIXES):
        name = name.removesuffix(ext) if name.lower().endswith(ext) else name
    return Path(f"{name}{suffix}")


def predict(cfg: PredictConfig) -> dict:
    """Write the predictions CSV; returns a summary (path, counts, metrics if labels were given)."""
    cfg.validate()
    pre = open_run(cfg.model)
    state = pre.state
    if "classifier.weight" not in pre.model_state:
        raise RandomMaskError(f"{pre.checkpoint}: not a fine-tuned classifier (a pre-trained run?); fine-tune it "
                              "with `randommask finetune`, or use `randommask embed`")
    mconf = ModelConfig.from_dict(pre.model_config)
    tok = _with_stride(pre.tokenizer, cfg.tokenizer_stride, f"{pre.path} reads with {pre.tokenizer.name}")
    max_length = _max_length(cfg, int(state.get("max_length") or mconf.max_position_embeddings),
                             mconf.max_position_embeddings)
    seqs = read_sequences(cfg.input)
    device = pick_device(cfg.device)
    model = BertForSequenceClassification(mconf)
    load_hf_state_dict(model, pre.model_state, strict=True)
    model.to(device).eval()
    plan = plan_windows(seqs.lengths, tok, max_length, cfg.long, cfg.window_overlap)

    def probabilities(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(model(ids, mask).logits.float(), dim=-1)
        return probs, torch.ones(ids.shape[0])

    probs = _run_windows(seqs, plan, tok, max_length, cfg.batch_size, device, cfg.progress, "predict", probabilities)
    pred = probs.argmax(-1)
    out = _out_path(cfg, ".predictions.csv")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    classes = [str(c) for c in state.get("labels") or range(probs.shape[1])]
    w.writerow(["id", *(["label"] if seqs.labels is not None else []), "predicted_label",
                *(f"prob_{c}" for c in classes), "length", "windows", "truncated"])
    truncated = plan.truncated
    for i in range(len(seqs.ids)):
        w.writerow([seqs.ids[i], *([seqs.labels[i]] if seqs.labels is not None else []), classes[pred[i]],
                    *(f"{p:.6f}" for p in probs[i]), int(seqs.lengths[i]), int(plan.windows[i]),
                    int(truncated[i])])
    atomic_write_text(out, buf.getvalue())
    summary: dict = {"out": str(out), "n": len(seqs.ids), "too_long": int(plan.too_long.sum()),
                     "truncated": int(truncated.sum()), "overflowed_windows": int(plan.overflowed.sum()),
                     "max_length": max_length}
    msg = f"predicted {len(seqs.ids)} sequences with {pre.path} ({state.get('task', 'task unknown')}) -> {out}"
    if seqs.labels is not None and all(_is_int(x) for x in seqs.labels):
        summary["metrics"] = classification_metrics(np.array([int(x) for x in seqs.labels]), pred)
        msg += "; against the label column: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
    print(msg)
    for note in _report_long(plan, max_length, cfg.long):
        print(f"note: {note}")
    return summary


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


# ------------------------------------------------------------------------------------------ embed
def embed(cfg: EmbedConfig) -> dict:
    """Write the embeddings .npy and its ids file; returns a summary (paths, shape, counts)."""
    cfg.validate()
    pre = open_run(cfg.model)
    mconf = ModelConfig.from_dict(pre.model_config)
    tok = _with_stride(pre.tokenizer, cfg.tokenizer_stride, f"{pre.path} reads with {pre.tokenizer.name}")
    if not -(mconf.num_layers + 1) <= cfg.layer <= mconf.num_layers:
        raise RandomMaskError(f"--layer {cfg.layer} is out of range: the model has layers 0..{mconf.num_layers} "
                              "(0 = embeddings output, -1 = last)")
    max_length = _max_length(cfg, mconf.max_position_embeddings, mconf.max_position_embeddings)
    seqs = read_sequences(cfg.input)
    device = pick_device(cfg.device)
    model = BertEncoderModel(mconf, add_pooling_layer=False)
    missing, _ = load_hf_state_dict(model, pre.model_state, strict=False)  # MLM / classifier heads are unused
    if missing:
        raise RandomMaskError(f"{pre.checkpoint}: lacks encoder weights such as {missing[0]!r}")
    model.to(device).eval()
    plan = plan_windows(seqs.lengths, tok, max_length, cfg.long, cfg.window_overlap)

    def pooled(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(ids, mask, output_hidden_states=cfg.layer != -1)
        hidden = out.last_hidden_state if cfg.layer == -1 else out.hidden_states[cfg.layer]
        hidden = hidden.float()
        if cfg.pooling == "cls":
            return hidden[:, 0], torch.ones(ids.shape[0], device=ids.device)
        m = mask.to(hidden.dtype)
        count = m.sum(1)
        # Window means weighted by their token counts: the pooled vector is the mean over all tokens read.
        return (hidden * m[..., None]).sum(1) / count[:, None], count

    emb = _run_windows(seqs, plan, tok, max_length, cfg.batch_size, device, cfg.progress, "embed", pooled)
    out = _out_path(cfg, ".embeddings.npy")
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")  # np.save would add it; the ids file must match
    buf = io.BytesIO()
    np.save(buf, emb.astype(np.float32))
    atomic_write_bytes(out, buf.getvalue())
    ids_path = out.with_name(out.name.removesuffix(".npy") + ".ids.tsv")
    rows = ["index\tid\tlength\twindows\ttruncated"]
    truncated = plan.truncated
    rows += [f"{i}\t{seqs.ids[i]}\t{int(seqs.lengths[i])}\t{int(plan.windows[i])}\t{int(truncated[i])}"
             for i in range(len(seqs.ids))]
    atomic_write_text(ids_path, "\n".join(rows) + "\n")
    print(f"embedded {len(seqs.ids)} sequences -> {out} {tuple(emb.shape)} ({cfg.pooling} pooling, layer "
          f"{cfg.layer}), ids in {ids_path}")
    for note in _report_long(plan, max_length, cfg.long):
        print(f"note: {note}")
    return {"out": str(out), "ids": str(ids_path), "shape": tuple(emb.shape), "too_long": int(plan.too_long.sum()),
            "truncated": int(truncated.sum()), "overflowed_windows": int(plan.overflowed.sum()),
            "max_length": max_length}
