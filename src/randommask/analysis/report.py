"""``randommask analyze RUN``: figures and a report on one pre-training run.

Writes to ``RUN/analysis/`` (or ``--out``): PNG figures, ``figures.json`` with every measured value,
and ``report.md`` linking the figures. The sections follow the paper's empirical study:

1. training / evaluation loss and masked-token accuracy, RandomMask phases marked (``curves.png``);
2. the k-mer token embeddings in 2-D coloured by central dinucleotide, first and last nucleotide
   (``embedding_map.png``), and silhouette scores of those labellings (``embedding_silhouette.png``);
   only for k-mers (tokens of one width, at least 2): BPE and single nucleotides skip it, with a note;
3. attention on held-out windows: entropy per layer and head, top-k shares (``attention.png``);
4. per layer: relative weight change from the initial weights and effective rank of the outputs
   (``layers.png``);
5. what the masks hide at each phase start (``masks.png``);
6. with several checkpoints, the per-layer measures over training (``over_time.png``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from randommask.errors import RandomMaskError

FIGURES = {
    "curves": "curves.png",
    "embedding_map": "embedding_map.png",
    "embedding_silhouette": "embedding_silhouette.png",
    "attention": "attention.png",
    "layers": "layers.png",
    "masks": "masks.png",
    "over_time": "over_time.png",
}


@dataclass
class AnalyzeConfig:
    """Figures and a report on a pre-training run (see `randommask.analysis.report`)."""

    run: str = ""  # the pre-training run folder
    out: str | None = None  # default: RUN/analysis
    checkpoint: str | None = None  # default: the run's latest checkpoint
    store: str | None = None  # genome store of the run (default: RUN/genome or the config's data.store)
    windows: int = 16  # held-out windows for attention, representations and masks
    batch_size: int = 4  # windows per forward pass
    top_k: list[int] = field(default_factory=lambda: [1, 5])  # attention share of the k most-attended tokens, per k
    projection: str = "auto"  # 2-D map of the embeddings: auto (UMAP if installed, else t-SNE), tsne, umap, none
    map_points: int = 0  # k-mers drawn in the 2-D map (0: all 4^k)
    tsne_iter: int = 1000  # t-SNE iterations (at least 500 are run)
    reference: str = "init"  # W0 for the weight change: init (re-created from the seed) or first (checkpoint)
    max_checkpoints: int = 12  # checkpoints measured for the over-time figure (evenly spaced)
    mask_draws: int = 8  # masks drawn per phase for what-the-masks-hide
    device: str = "auto"  # auto, cpu or cuda
    seed: int = 0  # for the 2-D map and subsampling
    progress: bool = True  # print what is being measured

    def validate(self) -> None:
        if not self.run:
            raise RandomMaskError("give the run folder: randommask analyze RUN")
        for name in ("windows", "batch_size", "tsne_iter", "max_checkpoints", "mask_draws"):
            if getattr(self, name) < 1:
                raise RandomMaskError(f"analyze: {name} must be at least 1, got {getattr(self, name)}")
        if self.map_points < 0:
            raise RandomMaskError(f"analyze: map_points must be >= 0, got {self.map_points}")
        if not self.top_k or any(k < 1 for k in self.top_k):
            raise RandomMaskError(f"analyze: top_k must be positive integers, got {self.top_k}")
        if self.projection not in ("auto", "tsne", "umap", "none"):
            raise RandomMaskError(f"analyze: projection must be auto, tsne, umap or none, got {self.projection!r}")
        if self.reference not in ("init", "first"):
            raise RandomMaskError(f"analyze: reference must be init or first, got {self.reference!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise RandomMaskError(f"analyze: device must be auto, cpu or cuda, got {self.device!r}")


# ------------------------------------------------------------------------------------------ pieces
def _phases(masking, last_step: int) -> list[dict]:
    from randommask.masking import phase_starts, span_widths

    if masking is None:
        return []
    starts = phase_starts(masking)
    ends = [*starts[1:], max(last_step, masking.total_steps)]
    return [{"phase": q + 1, "start": s, "end": e, "widths": span_widths(masking, s)}
            for q, (s, e) in enumerate(zip(starts, ends, strict=True))]


def project_2d(x: np.ndarray, method: str, seed: int, tsne_iter: int) -> tuple[np.ndarray, str]:
    """2-D map of the rows of ``x`` (cosine geometry): UMAP if asked for or available, else t-SNE."""
    if method in ("auto", "umap"):
        try:
            import umap  # type: ignore[import-not-found]

            return umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(x), "UMAP"
        except ImportError:
            if method == "umap":
                raise RandomMaskError("projection umap needs the umap-learn package") from None
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed,
                max_iter=max(500, tsne_iter))  # the first 250 iterations are early exaggeration
    return tsne.fit_transform(np.asarray(x, dtype=np.float32)), "t-SNE"


def mask_hiding(enc, masking, tokenizer, seed: int, draws: int) -> list[dict]:
    """Per phase start: masked tokens and truly hidden bases per masked span and per window.

    The bases of a window are those its tokens cover (their spans), and the expectation for an isolated
    span follows the tokens: `expected_hidden` for k-mers; for tokens of varying width, which never
    overlap (BPE), every base of a masked token is hidden, so a span of w tokens hides w times the mean
    width of the windows' tokens.
    """
    from randommask.analysis.measures import expected_hidden, token_width
    from randommask.masking import analysis_rng, apply_mask, hidden_nucleotides, phase_starts, span_widths

    spans = enc.spans
    n_tokens = int(enc.lengths.sum())
    n_bases = int(np.maximum(spans[..., 1].max(axis=1, initial=0), 0).sum())  # truncated windows: what is read
    width = token_width([tokenizer.vocab[i] for i in tokenizer.kmer_ids])
    real = spans[..., 0] >= 0
    mean_width = float((spans[..., 1] - spans[..., 0])[real].mean()) if real.any() else 0.0

    def expected(w: int) -> float:
        if width is None:
            return w * mean_width
        return expected_hidden(w, tokenizer.bases_per_token, tokenizer.bases_between_tokens)

    rows = []
    for q, step in enumerate(phase_starts(masking)):
        lengths, hidden, masked, hid_bases = [], [], 0, 0
        for d in range(draws):
            _, _, mask = apply_mask(enc.ids, enc.special_mask, analysis_rng(seed, step, d), masking, step,
                                    tokenizer.mask_id, tokenizer.kmer_ids)
            rep = hidden_nucleotides(mask, spans)
            lengths.append(rep.run_lengths)
            hidden.append(rep.run_hidden)
            masked += int(rep.masked_per_seq.sum())
            hid_bases += int(rep.hidden_per_seq.sum())
        lengths_a, hidden_a = np.concatenate(lengths), np.concatenate(hidden)
        widths = span_widths(masking, step)
        rows.append({
            "phase": q + 1, "step": int(step), "widths": widths, "spans": int(lengths_a.size),
            "mean_span_tokens": float(lengths_a.mean()) if lengths_a.size else 0.0,
            "mean_hidden_per_span": float(hidden_a.mean()) if hidden_a.size else 0.0,
            "expected_hidden_per_span": float(np.mean([expected(w) for w in widths])),
            "masked_token_fraction": masked / max(draws * n_tokens, 1),
            "hidden_base_fraction": hid_bases / max(draws * n_bases, 1),
        })
    return rows


def _pick(items: list, n: int) -> list:
    """At most ``n`` items, evenly spaced, first and last included."""
    if len(items) <= n:
        return list(items)
    idx = sorted(set(np.linspace(0, len(items) - 1, n).round().astype(int).tolist()))
    return [items[i] for i in idx]


def _clean(x: Any) -> Any:
    """JSON-safe: numpy to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ------------------------------------------------------------------------------------------ analyze
def analyze(cfg: AnalyzeConfig) -> dict:
    """Measure the run, draw the figures, write ``figures.json`` and ``report.md``; returns the values."""
    from randommask import checkpoint as ckpt
    from randommask.analysis import figures as fg
    from randommask.analysis.measures import kmer_labels, relative_change, silhouettes, token_width
    from randommask.analysis.probe import build_model, eval_encoding, open_store, probe, run_masking
    from randommask.model import ModelConfig
    from randommask.runtime import pick_device
    from randommask.tokenizers import uniform_loss

    cfg.validate()
    t0 = time.perf_counter()
    say = print if cfg.progress else (lambda *a, **k: None)
    run = ckpt.open_run(cfg.run, cfg.checkpoint)
    out = Path(cfg.out) if cfg.out else run.path / "analysis"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot create the report folder ({e.strerror or e})") from None
    device = pick_device(cfg.device)
    tok, mconf = run.tokenizer, ModelConfig.from_dict(run.model_config)
    masking = run_masking(run)
    top_k = tuple(sorted(set(cfg.top_k)))
    values: dict[str, Any] = {
        "run": str(run.path), "checkpoint": run.checkpoint.name, "step": run.step,
        # A BPE spec holds its whole tokenizer.json: figures.json keeps the rest.
        "tokenizer": {k: v for k, v in tok.spec.items() if k != "json"},
        "model": mconf.to_dict(), "seed": run.seed,
        "masking": masking.to_dict() if masking else None, "figures": {}, "notes": []}
    notes: list[str] = values["notes"]
    figs: dict[str, str] = values["figures"]

    # 1. curves
    phases = _phases(masking, run.step)
    if run.metrics:
        say("analyze: training curves")
        uniform = uniform_loss(tok)
        fg.plot_curves(run.metrics, phases, uniform, out / FIGURES["curves"])
        figs["curves"] = FIGURES["curves"]
        series = {key: [[m["step"], m[key]] for m in run.metrics if key in m]
                  for key in ("loss", "acc", "eval_loss", "eval_acc")}
        values["curves"] = {"uniform_loss": uniform, "uniform_tokens": len(tok.kmer_ids), "phases": phases, **series}
    else:
        notes.append("The run has no metrics.jsonl: no training curves.")

    # 2. embeddings
    init_model = build_model(mconf, None, run.seed)
    init_state = init_model.state_dict()
    kmers = [tok.vocab[i] for i in tok.kmer_ids]
    width = token_width(kmers)
    if width is not None and width >= 2:
        say("analyze: token embeddings")
        key = "bert.embeddings.word_embeddings.weight"
        emb = run.model_state[key][torch.as_tensor(tok.kmer_ids, dtype=torch.long)].float().numpy()
        emb0 = init_state[key][torch.as_tensor(tok.kmer_ids, dtype=torch.long)].float().numpy()
        labels = kmer_labels(kmers)
        sil, sil0 = silhouettes(emb, labels, seed=cfg.seed), silhouettes(emb0, labels, seed=cfg.seed)
        values["embeddings"] = {"silhouette": sil, "silhouette_init": sil0, "points": len(kmers)}
        fg.plot_silhouettes(sil, sil0, out / FIGURES["embedding_silhouette"])
        figs["embedding_silhouette"] = FIGURES["embedding_silhouette"]
        if cfg.projection != "none":
            idx = np.arange(len(kmers))
            if 0 < cfg.map_points < len(kmers):
                idx = np.sort(np.random.default_rng(cfg.seed).choice(len(kmers), cfg.map_points, replace=False))
            xy, method = project_2d(emb[idx], cfg.projection, cfg.seed, cfg.tsne_iter)
            fg.plot_embedding_map(xy, {n: [lab[i] for i in idx] for n, lab in labels.items()}, method,
                                  out / FIGURES["embedding_map"])
            figs["embedding_map"] = FIGURES["embedding_map"]
            values["embeddings"].update({"method": method, "map_points": int(idx.size)})
    elif width is not None:
        notes.append(f"Tokenizer {tok.name} has single-nucleotide tokens: no k-mer embedding analysis.")
    else:
        lengths = [len(t) for t in kmers]
        notes.append(f"Tokenizer {tok.name} has tokens of {min(lengths)} to {max(lengths)} bases: the token-embedding "
                     "analysis (clustering by central dinucleotide, first and last nucleotide) is defined for k-mers, "
                     "tokens of one width, so it is skipped.")

    # 3-4. attention and layers on the held-out windows
    say("analyze: attention and layer measures on the held-out windows")
    store = open_store(run, cfg.store)
    enc = eval_encoding(run, store, cfg.windows)
    values["windows"] = {"count": int(enc.ids.shape[0]), "tokens": int(enc.ids.shape[1]),
                         "kmer_tokens": int(enc.lengths.sum())}
    trained = probe(build_model(mconf, run.model_state), enc, cfg.batch_size, top_k, device)
    at_init = probe(init_model, enc, cfg.batch_size, top_k, device)
    def attention_only(d: dict) -> dict:
        return {k: x for k, x in d.items() if not k.startswith("effective_rank")}

    values["attention"] = {**attention_only(trained.to_dict()), "init": attention_only(at_init.to_dict())}
    fg.plot_attention(trained.to_dict(), at_init.to_dict(), out / FIGURES["attention"])
    figs["attention"] = FIGURES["attention"]

    ref_state, ref_name = init_state, f"initial weights re-created from seed {run.seed}"
    ref_short = f"re-created init, seed {run.seed}"
    if cfg.reference == "first":
        first = run.checkpoints[0] if run.checkpoints else None
        if first is None or first == run.checkpoint:
            notes.append("--reference first: the analysed checkpoint is the run's first; W0 is the re-created "
                         "initial weights instead.")
        else:
            ref_state = ckpt.load_checkpoint(first)["model"]
            ref_name = f"first saved checkpoint, {first.name}"
            ref_short = f"checkpoint {first.name}"
    change = relative_change(run.model_state, ref_state, mconf.num_layers)
    values["layers"] = {"reference": ref_name, "relative_change": change,
                        "effective_rank": trained.effective_rank, "effective_rank_init": at_init.effective_rank,
                        "effective_rank_uncentred": trained.effective_rank_uncentred,
                        "effective_rank_uncentred_init": at_init.effective_rank_uncentred,
                        "hidden_size": mconf.hidden_size}
    fg.plot_layers(change, ref_short, trained.effective_rank, at_init.effective_rank, mconf.hidden_size,
                   out / FIGURES["layers"])
    figs["layers"] = FIGURES["layers"]

    # 5. masks
    if masking is not None:
        say("analyze: what the masks hide")
        rows = mask_hiding(enc, masking, tok, run.seed, cfg.mask_draws)
        fixed = width is not None
        values["masks"] = {"strategy": masking.strategy, "draws": cfg.mask_draws, "phases": rows,
                           "fixed_width": fixed}
        if fixed:
            tokens, rule = f"k = {tok.bases_per_token}, stride {tok.bases_between_tokens}", (
                "m − k + 1" if tok.bases_between_tokens == 1 else "m·k")
        else:
            tokens, rule = f"{tok.name}, tokens of varying width", "m × mean token width"
        fg.plot_masks(rows, tokens, rule, out / FIGURES["masks"])
        figs["masks"] = FIGURES["masks"]
    else:
        notes.append("The checkpoint's config has no masking section: no mask analysis.")

    # 6. over checkpoints
    chosen = _pick(run.checkpoints, cfg.max_checkpoints)
    if len(chosen) >= 2:
        say(f"analyze: {len(chosen)} checkpoints over time")
        steps, ent, top1, er = [], [], [], []
        change_t: dict[str, list[float]] = {}
        points = []
        if cfg.reference == "init":
            points.append((0, at_init, relative_change(init_state, ref_state, mconf.num_layers)))
        for path in chosen:
            if path == run.checkpoint:
                points.append((run.step, trained, change))
                continue
            state = ckpt.load_checkpoint(path)
            pr = probe(build_model(mconf, state["model"]), enc, cfg.batch_size, top_k, device)
            points.append((int(state.get("step", 0)), pr, relative_change(state["model"], ref_state, mconf.num_layers)))
        points.sort(key=lambda p: p[0])
        for step, pr, ch in points:
            steps.append(step)
            ent.append(pr.entropy.mean(1))
            top1.append(pr.shares[top_k[0]].mean(1))
            er.append(pr.effective_rank)
            for g, v in ch.items():
                change_t.setdefault(g, []).append(v)
        values["over_time"] = {"steps": steps, "entropy_per_layer": ent, f"top{top_k[0]}_share_per_layer": top1,
                               "effective_rank": er, "relative_change": change_t,
                               "checkpoints": [p.name for p in chosen]}
        fg.plot_over_time(steps, np.array(ent), np.array(top1), np.array(er), change_t, trained.uniform_entropy,
                          mconf.hidden_size, ref_short, out / FIGURES["over_time"])
        figs["over_time"] = FIGURES["over_time"]
    else:
        values["over_time"] = {"missing": "Only one checkpoint is saved, so nothing is drawn over training. "
                               "pretrain keeps the newest 2 by default (--keep_checkpoints 2); run it with "
                               "--keep_checkpoints 0 to keep every checkpoint (one per --save_interval steps)."}

    values["seconds"] = round(time.perf_counter() - t0, 2)
    values = _clean(values)
    (out / "figures.json").write_text(json.dumps(values, indent=1) + "\n")
    (out / "report.md").write_text(render_report(values, cfg))
    say(f"analyze: wrote {len(figs)} figures, figures.json and report.md to {out}")
    return values


# ------------------------------------------------------------------------------------------ report.md
def _fmt(v: Any, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def render_report(v: dict, cfg: AnalyzeConfig) -> str:
    m, tok = v["model"], v["tokenizer"]
    figs = v["figures"]
    lines = [f"# Analysis of `{v['run']}`", "",
             f"Checkpoint `{v['checkpoint']}` (step {v['step']}); model {m['num_layers']} layers x {m['num_heads']} "
             f"heads, hidden size {m['hidden_size']}; tokenizer `{tok['name']}`; masking "
             f"`{(v.get('masking') or {}).get('strategy', 'unknown')}`; seed {v['seed']}.", ""]
    if "windows" in v:
        w = v["windows"]
        lines += [f"Attention, representations and masks are measured on {w['count']} held-out evaluation windows "
                  f"of {w['tokens']} tokens (the first of pretrain's eval windows), unmasked, in eval mode.", ""]
    if "curves" in figs:
        c = v["curves"]
        lines += ["## 1. Training curves", "", f"![Loss and accuracy over training]({figs['curves']})", ""]
        last = {k: c[k][-1][1] for k in ("loss", "acc", "eval_loss", "eval_acc") if c.get(k)}
        lines += [f"Last logged: training loss {_fmt(last.get('loss'))}, accuracy {_fmt(last.get('acc'))}; "
                  f"evaluation loss {_fmt(last.get('eval_loss'))}, accuracy {_fmt(last.get('eval_acc'))}. "
                  f"A uniform guess over the {c.get('uniform_tokens', 'ordinary')} ordinary tokens (for k-mers, 4^k) "
                  f"scores {c['uniform_loss']:.3f}.", ""]
        if len(c["phases"]) > 1:
            lines += ["RandomMask phases (dotted lines; top labels P<n> and span widths w): " + "; ".join(
                f"phase {p['phase']} from step {p['start']} (widths {p['widths'][0]}..{p['widths'][-1]})"
                for p in c["phases"]) + ".", ""]
    if "embeddings" in v:
        e = v["embeddings"]
        lines += ["## 2. Token embeddings", ""]
        if "embedding_map" in figs:
            lines += [f"![k-mer embeddings in 2-D]({figs['embedding_map']})", "",
                      f"{e['method']} of {e['map_points']} of the {e['points']} k-mer word embeddings (cosine)."
                      + (" UMAP is used when the `umap-learn` package is installed." if e["method"] == "t-SNE" else ""),
                      ""]
        lines += [f"![Silhouette scores]({figs['embedding_silhouette']})", "",
                  "| labels | silhouette (trained) | at initialisation |", "| --- | --- | --- |"]
        lines += [f"| {n} | {_fmt(s)} | {_fmt(e['silhouette_init'].get(n))} |" for n, s in e["silhouette"].items()]
        lines += ["", "Silhouette of the embeddings (cosine distance, all k-mers) under each labelling: the paper "
                  "finds that overlapping k-mer embeddings cluster by their central nucleotides, which shows as a "
                  "central-dinucleotide score above the first- and last-nucleotide scores.", ""]
    if "attention" in v:
        a = v["attention"]
        ks = list(a["top_k_share_per_layer"])
        lines += ["## 3. Attention", "", f"![Attention entropy and focus]({figs['attention']})", "",
                  f"Entropy of each real query row over the real keys (nats), averaged per head; uniform attention "
                  f"over the L = {v['windows']['tokens']} tokens gives ln L = {a['uniform_entropy']:.3f}. Top-k share: "
                  "the weight a row gives its k most-attended keys. Low entropy and a high top-k share mean a layer "
                  "attends to a few tokens (the paper's under-trained intermediate layers).", "",
                  "| layer | entropy | at init | " + " | ".join(f"top-{k} share" for k in ks) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in ks) + " |"]
        for i, e_ in enumerate(a["entropy_per_layer"]):
            lines.append(f"| {i + 1} | {_fmt(e_)} | {_fmt(a['init']['entropy_per_layer'][i])} | "
                         + " | ".join(_fmt(a["top_k_share_per_layer"][k][i]) for k in ks) + " |")
        lines.append("")
    if "layers" in v:
        lay = v["layers"]
        lines += ["## 4. Layers: weight change and effective rank", "", f"![Per-layer diagnostics]({figs['layers']})",
                  "", f"Relative change ||W - W0|| / ||W0|| over each part's weight matrices (LayerNorm gains and "
                  f"biases excluded); W0 = {lay['reference']}. pretrain seeds torch with the run's seed right before "
                  "building the model, so the initial weights are re-created exactly (runs started with "
                  "`--init-from` are the exception: use `--reference first`). Effective rank: exp of the entropy of "
                  "the normalized singular values of a layer's outputs over the k-mer tokens of the windows, after "
                  "centring (uncentred values are in figures.json); 1 = all tokens on a line, the hidden size = "
                  "isotropic.", "", "| part | relative change |", "| --- | --- |"]
        lines += [f"| {g} | {_fmt(c, 4)} |" for g, c in lay["relative_change"].items()]
        lines += ["", "| layer output | effective rank | at init |", "| --- | --- | --- |"]
        lines += [f"| {'embeddings' if i == 0 else i} | {_fmt(r, 1)} | {_fmt(lay['effective_rank_init'][i], 1)} |"
                  for i, r in enumerate(lay["effective_rank"])]
        lines.append("")
    if "masks" in v:
        mk = v["masks"]
        tokens_rule = ("with overlapping k-mers a span of m masked tokens hides only m - k + 1 bases."
                       if mk.get("fixed_width", True) else
                       "BPE tokens never overlap, so a masked token hides every base it covers and a span of m "
                       "tokens is expected to hide m times the mean token width of the windows.")
        lines += ["## 5. What the masks hide", "", f"![Hidden nucleotides per phase]({figs['masks']})", "",
                  f"The run's masking (`{mk['strategy']}`) applied {mk['draws']} times to the windows at each phase "
                  f"start. A base is truly hidden when masked tokens cover it and no visible token does: {tokens_rule}",
                  "",
                  "| phase | step | widths | spans | tokens / span | hidden bases / span | expected | "
                  "% tokens masked | % bases hidden |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['phase']} | {r['step']} | {r['widths'][0]}..{r['widths'][-1]} | {r['spans']} | "
                  f"{_fmt(r['mean_span_tokens'], 2)} | {_fmt(r['mean_hidden_per_span'], 2)} | "
                  f"{_fmt(r['expected_hidden_per_span'], 2)} | {100 * r['masked_token_fraction']:.1f} | "
                  f"{100 * r['hidden_base_fraction']:.1f} |" for r in mk["phases"]]
        lines += ["", "Expected: mean over the phase's widths of what an isolated span of that width hides inside a "
                  "window. Observed values run higher: spans that touch merge into longer runs, and a span at a "
                  "window end has no visible neighbour on that side.", ""]
    lines += ["## 6. Over training", ""]
    if "over_time" in figs:
        ot = v["over_time"]
        lines += [f"![Per-layer measures over checkpoints]({figs['over_time']})", "",
                  f"Measured at steps {', '.join(map(str, ot['steps']))} ({len(ot['checkpoints'])} saved checkpoints"
                  + (", plus the re-created initial weights at step 0" if cfg.reference == "init" else "") + ")."
                  " pretrain keeps only the newest 2 checkpoints by default; pass `--keep_checkpoints 0` to keep "
                  "them all.", ""]
    elif "over_time" in v:
        lines += [v["over_time"]["missing"], ""]
    if v["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in v["notes"]] + [""]
    lines += ["All measured values are in `figures.json`.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ CLI
