"""The plots of `randommask analyze`: each function takes measured values and writes one PNG.

Figures are made with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), so nothing
touches pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

DPI = 120
NUCLEOTIDE_COLOURS = {"A": "#1b9e77", "C": "#d95f02", "G": "#7570b3", "T": "#e7298a"}
INIT_STYLE = {"color": "0.55", "linestyle": "--", "marker": "o", "markersize": 3}


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _layer_colours(n: int) -> list:
    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def _sixteen_colours() -> list:
    tab20 = colormaps["tab20"].colors
    return [tab20[i] for i in range(0, 20, 2)] + [tab20[i] for i in range(1, 12, 2)]


# ------------------------------------------------------------------------------------------ curves
def _mark_phases(ax, phases: Sequence[Mapping], last_step: float) -> None:
    """Vertical lines at phase starts, light shading of every other phase, labels on a top axis."""
    if len(phases) < 2:
        return
    mids, labels = [], []
    for q, ph in enumerate(phases):
        lo, hi = ph["start"], min(ph["end"], last_step)
        if lo > last_step:
            break
        if q > 0:
            ax.axvline(lo, color="0.35", linestyle=":", linewidth=1)
        if q % 2 == 1:
            ax.axvspan(lo, hi, color="0.93", zorder=0)
        w = ph["widths"]
        mids.append((lo + hi) / 2)
        labels.append(f"P{q + 1}\nw {w[0]}" + (f"–{w[-1]}" if w[-1] != w[0] else ""))
    top = ax.secondary_xaxis("top")
    top.set_xticks(mids, labels, fontsize=7)
    top.tick_params(length=0)


def plot_curves(metrics: Sequence[Mapping], phases: Sequence[Mapping], uniform_loss: float | None,
                path: Path) -> Path:
    """Training and evaluation loss and masked-token accuracy over steps, phases marked."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    last_step = max((m["step"] for m in metrics), default=1)
    for ax, key, name in ((ax_loss, "loss", "loss (nats)"), (ax_acc, "acc", "masked-token accuracy")):
        train = [(m["step"], m[key]) for m in metrics if key in m]
        evals = [(m["step"], m[f"eval_{key}"]) for m in metrics if f"eval_{key}" in m]
        if train:
            ax.plot(*zip(*train, strict=True), label="training (logged window)", color="tab:blue", linewidth=1.2,
                    marker="." if len(train) <= 50 else None)
        if evals:
            ax.plot(*zip(*evals, strict=True), label="held-out evaluation", color="tab:orange", marker="o",
                    markersize=3, linewidth=1.2)
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_xlim(0, last_step * 1.02)
        ax.grid(alpha=0.3)
        _mark_phases(ax, phases, last_step)
    if uniform_loss is not None:
        ax_loss.axhline(uniform_loss, color="0.4", linestyle="--", linewidth=1, label="uniform guess over the tokens")
    ax_loss.set_title("Masked-LM loss (phase starts dotted)")
    ax_acc.set_title("Masked-token accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ embeddings
def plot_arm_curves(arms: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], floor: float,
                    regime: float, uniform_loss: float | None, path: Path,
                    title: str = "Pre-training loss per arm") -> Path:
    """Masked-LM loss of several pre-training runs against tokens seen, with the one-hidden-base floor.

    `arms[name]` holds "train" and "eval" lists of (tokens, loss). The dashed floor (ln 4) is where an
    overlapping-k-mer model that recovers every visible base of a span lands; below the dotted regime
    line the shortcut has been learned.
    """
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.subplots()
    colours = colormaps["tab10"].colors
    for i, (name, curves) in enumerate(arms.items()):
        c = colours[i % 10]
        train, evals = curves.get("train") or [], curves.get("eval") or []
        if train:
            x, y = zip(*train, strict=True)
            ax.plot(np.asarray(x) / 1e6, y, color=c, linewidth=1.0, alpha=0.55)
        if evals:
            x, y = zip(*evals, strict=True)
            ax.plot(np.asarray(x) / 1e6, y, color=c, marker="o", markersize=3, linewidth=1.6,
                    label=f"{name} (held-out)")
        elif train:
            ax.plot([], [], color=c, label=f"{name} (training)")
    if uniform_loss is not None:
        ax.axhline(uniform_loss, color="0.4", linestyle="--", linewidth=1, label=f"uniform guess ({uniform_loss:.2f})")
    ax.axhline(regime, color="0.25", linestyle=":", linewidth=1.2, label=f"shortcut learned below {regime:g}")
    ax.axhline(floor, color="0.55", linestyle="--", linewidth=1, label=f"one hidden base per span: ln 4 = {floor:.2f}")
    ax.set_xlabel("pre-training tokens seen (millions)")
    ax.set_ylabel("masked-LM loss (nats)")
    ax.set_ylim(0, max(uniform_loss or 0, 8.6) + 0.3)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title} (thin: training, markers: held-out evaluation)")
    fig.legend(fontsize=8, loc="outside right upper")  # outside: a collapsing curve can reach any corner
    return _save(fig, path)


def plot_embedding_map(xy: np.ndarray, labels: Mapping[str, Sequence[str]], method: str, path: Path) -> Path:
    """The k-mer embeddings in 2-D, one panel per labelling (central dinucleotide, first, last)."""
    names = list(labels)
    fig = Figure(figsize=(5.2 * len(names), 6.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    size = max(1.0, min(12.0, 20000 / max(len(xy), 1) / 2))
    for ax, name in zip(axes, names, strict=True):
        lab = np.asarray(labels[name])
        classes = sorted(set(lab.tolist()))
        colours = NUCLEOTIDE_COLOURS if all(c in NUCLEOTIDE_COLOURS for c in classes) \
            else dict(zip(classes, _sixteen_colours() * (len(classes) // 16 + 1), strict=False))
        for c in classes:
            sel = lab == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[c], label=c, linewidths=0, alpha=0.85)
        ax.set_title(f"coloured by {name}")
        ax.set_xlabel(f"{method} 1")
        ax.set_ylabel(f"{method} 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=4,
                  fontsize=8, markerscale=max(1.0, 4 / size ** 0.5), handletextpad=0.2, columnspacing=0.8,
                  frameon=False)
    fig.suptitle(f"Token embeddings of the {len(xy)} k-mers ({method})")
    return _save(fig, path)


def plot_silhouettes(trained: Mapping[str, float], init: Mapping[str, float] | None, path: Path) -> Path:
    """Silhouette scores of the k-mer embeddings under each labelling, trained vs initial."""
    names = list(trained)
    x = np.arange(len(names))
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.38 if init else 0.6
    bars = ax.bar(x - (width / 2 if init else 0), [trained[n] for n in names], width, label="trained",
                  color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    if init:
        bars0 = ax.bar(x + width / 2, [init[n] for n in names], width, label="at initialisation", color="0.7")
        ax.bar_label(bars0, fmt="%.3f", fontsize=8, padding=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, names)
    ax.set_ylabel("silhouette score (cosine)")
    lo = min(0.0, *(v for v in trained.values()), *((init or {}).values()))
    hi = max(0.0, *(v for v in trained.values()), *((init or {}).values()))
    pad = max(0.02, 0.15 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_title("How well k-mer embeddings cluster by label")
    ax.legend(fontsize=8)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ attention
def plot_attention(trained: Mapping, init: Mapping | None, path: Path) -> Path:
    """Entropy heat map [layer, head], entropy per layer vs uniform, top-k shares per layer."""
    ent = np.asarray(trained["entropy"])
    n_layers, n_heads = ent.shape
    uniform = trained["uniform_entropy"]
    layers = np.arange(1, n_layers + 1)
    fig = Figure(figsize=(14, 5.2), layout="constrained")
    ax_map, ax_ent, ax_top = fig.subplots(1, 3, width_ratios=[1.1, 1, 1])
    im = ax_map.imshow(ent, vmin=0, vmax=uniform, cmap="magma", aspect="auto")
    if n_layers * n_heads <= 256:
        for (i, j), v in np.ndenumerate(ent):
            ax_map.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.5 * uniform else "black")
    ax_map.set_xticks(range(n_heads), [str(h + 1) for h in range(n_heads)])
    ax_map.set_yticks(range(n_layers), [str(i) for i in layers])
    ax_map.set_xlabel("head")
    ax_map.set_ylabel("layer")
    ax_map.set_title("Attention entropy per head (nats)")
    fig.colorbar(im, ax=ax_map, label=f"entropy (uniform = ln L = {uniform:.2f})")

    ax_ent.plot(layers, ent.mean(1), marker="o", color="tab:blue", label="trained (mean over heads)")
    ax_ent.fill_between(layers, ent.min(1), ent.max(1), color="tab:blue", alpha=0.15, label="range over heads")
    if init:
        ax_ent.plot(layers, np.asarray(init["entropy"]).mean(1), label="at initialisation", **INIT_STYLE)
    ax_ent.axhline(uniform, color="black", linestyle=":", label=f"uniform, ln L = {uniform:.2f}")
    ax_ent.set_ylim(0, uniform * 1.08)
    ax_ent.set_xlabel("layer")
    ax_ent.set_ylabel("mean attention entropy (nats)")
    ax_ent.set_xticks(layers)
    ax_ent.set_title("Entropy per layer")
    ax_ent.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    length = float(np.exp(uniform))
    colours = ["tab:red", "tab:purple", "tab:green", "tab:brown"]
    for c, (k, share) in zip(colours, trained["top_k_share_per_layer"].items(), strict=False):
        ax_top.plot(layers, share, marker="o", color=c, label=f"top-{k} keys, trained")
        if init:
            ax_top.plot(layers, init["top_k_share_per_layer"][k], color=c, linestyle="--", alpha=0.6,
                        label=f"top-{k}, at initialisation")
        ax_top.axhline(min(1.0, int(k) / length), color=c, linestyle=":", linewidth=0.8, label=f"uniform, {k}/L")
    ax_top.set_ylim(0, 1.02)
    ax_top.set_xlabel("layer")
    ax_top.set_ylabel("share of attention weight")
    ax_top.set_xticks(layers)
    ax_top.set_title("Weight on the most-attended keys")
    ax_top.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ layers
def plot_layers(change: Mapping[str, float], reference: str, erank: Sequence[float],
                erank_init: Sequence[float] | None, hidden_size: int, path: Path) -> Path:
    """Relative weight change per part of the model; effective rank of each layer's output."""
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_w, ax_r = fig.subplots(1, 2)
    names = list(change)
    bars = ax_w.bar(range(len(names)), [change[n] for n in names], color="tab:green")
    ax_w.bar_label(bars, fmt="%.3f" if max(change.values(), default=0) >= 0.01 else "%.2e",
                   fontsize=8 if len(names) <= 8 else 6, padding=2)
    ax_w.set_xticks(range(len(names)), names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6
                    else "center")
    ax_w.set_ylabel("||W − W0|| / ||W0||")
    ax_w.set_ylim(0, max([*change.values(), 1e-6]) * 1.18)
    ax_w.set_title(f"How far the weights moved (W0: {reference})")

    x = np.arange(len(erank))
    ax_r.plot(x, erank, marker="o", color="tab:blue", label="trained")
    if erank_init is not None:
        ax_r.plot(x, erank_init, label="at initialisation", **INIT_STYLE)
    ax_r.axhline(hidden_size, color="black", linestyle=":", label=f"hidden size {hidden_size}")
    ax_r.set_xticks(x, ["emb"] + [str(i) for i in x[1:]])
    ax_r.set_xlabel("layer output (emb = embeddings)")
    ax_r.set_ylabel("effective rank")
    ax_r.set_ylim(0, hidden_size * 1.08)
    ax_r.set_title("Effective rank of token representations")
    ax_r.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ masks
def plot_masks(rows: Sequence[Mapping], tokens: str, rule: str, path: Path) -> Path:
    """Per phase: masked tokens and truly hidden bases per masked span, with the tokenizer's expectation.

    tokens: the tokenizer in words for the title (``k = 6, stride 1``); rule: the expectation's formula."""
    x = np.arange(len(rows))
    labels = [f"phase {r['phase']}\nstep {r['step']}\nw {r['widths'][0]}" +
              (f"–{r['widths'][-1]}" if r["widths"][-1] != r["widths"][0] else "") for r in rows]
    fig = Figure(figsize=(max(7.0, 1.6 * len(rows) + 4), 4.4), layout="constrained")
    ax_s, ax_f = fig.subplots(1, 2)
    w = 0.38
    b1 = ax_s.bar(x - w / 2, [r["mean_span_tokens"] for r in rows], w, label="masked tokens per span",
                  color="tab:blue")
    b2 = ax_s.bar(x + w / 2, [r["mean_hidden_per_span"] for r in rows], w, label="bases truly hidden per span",
                  color="tab:red")
    ax_s.bar_label(b1, fmt="%.2f", fontsize=7, padding=1)
    ax_s.bar_label(b2, fmt="%.2f", fontsize=7, padding=1)
    ax_s.plot(x + w / 2, [r["expected_hidden_per_span"] for r in rows], linestyle="none", marker="D",
              color="black", markersize=5, label=f"expected for an isolated span ({rule})")
    ax_s.set_xticks(x, labels, fontsize=8)
    ax_s.set_ylabel("per masked span")
    ax_s.set_ylim(0, max([r["mean_span_tokens"] for r in rows] + [1]) * 1.3)
    ax_s.set_title(f"What a masked span hides ({tokens})")
    ax_s.legend(fontsize=8, loc="upper left")

    b3 = ax_f.bar(x - w / 2, [100 * r["masked_token_fraction"] for r in rows], w, label="tokens masked",
                  color="tab:blue")
    b4 = ax_f.bar(x + w / 2, [100 * r["hidden_base_fraction"] for r in rows], w, label="bases truly hidden",
                  color="tab:red")
    ax_f.bar_label(b3, fmt="%.1f", fontsize=7, padding=1)
    ax_f.bar_label(b4, fmt="%.1f", fontsize=7, padding=1)
    ax_f.set_xticks(x, labels, fontsize=8)
    ax_f.set_ylabel("% of a window")
    ax_f.set_ylim(0, max([100 * r["masked_token_fraction"] for r in rows] + [1]) * 1.3)
    ax_f.set_title("Masked tokens vs truly hidden bases")
    ax_f.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ over time
def plot_over_time(steps: Sequence[int], entropy: np.ndarray, top1: np.ndarray, erank: np.ndarray,
                   change: Mapping[str, Sequence[float]], uniform: float, hidden_size: int,
                   reference: str, path: Path) -> Path:
    """Per-layer attention entropy, top-1 share, effective rank and weight change over checkpoints.

    entropy, top1: [checkpoints, layers]; erank: [checkpoints, layers + 1] (embeddings first);
    change: group -> [checkpoints].
    """
    n_layers = entropy.shape[1]
    palette = _layer_colours(n_layers + 2)  # embeddings, layer 1..N, MLM head: the same colour in every panel
    colours = {"embeddings": palette[0], **{f"layer {i}": palette[i] for i in range(1, n_layers + 1)},
               "MLM head": palette[-1]}
    fig = Figure(figsize=(12, 8), layout="constrained")
    (ax_e, ax_t), (ax_r, ax_w) = fig.subplots(2, 2)
    for i in range(n_layers):
        name = f"layer {i + 1}"
        ax_e.plot(steps, entropy[:, i], marker="o", markersize=3, color=colours[name], label=name)
        ax_t.plot(steps, top1[:, i], marker="o", markersize=3, color=colours[name], label=name)
    for i in range(erank.shape[1]):
        name = "embeddings" if i == 0 else f"layer {i}"
        ax_r.plot(steps, erank[:, i], marker="o", markersize=3, color=colours[name], label=name)
    for name, values in change.items():
        ax_w.plot(steps, values, marker="o", markersize=3, color=colours.get(name, "black"), label=name)
    ax_e.axhline(uniform, color="black", linestyle=":")
    ax_e.set_ylim(0, uniform * 1.08)
    ax_e.set_ylabel("mean attention entropy (nats)")
    ax_e.set_title(f"Attention entropy per layer (dotted: uniform, ln L = {uniform:.2f})")
    ax_t.axhline(1 / np.exp(uniform), color="black", linestyle=":")
    ax_t.set_ylim(0, 1.02)
    ax_t.set_ylabel("share of weight on the top-1 key")
    ax_t.set_title("Attention focus per layer (dotted: uniform, 1/L)")
    ax_r.axhline(hidden_size, color="black", linestyle=":")
    ax_r.set_ylim(0, hidden_size * 1.08)
    ax_r.set_ylabel("effective rank")
    ax_r.set_title(f"Effective rank of layer outputs (dotted: hidden size {hidden_size})")
    ax_w.set_ylabel("||W − W0|| / ||W0||")
    ax_w.set_title(f"Weight change (W0: {reference})")
    for ax in (ax_e, ax_t, ax_r, ax_w):
        ax.set_xlabel("training step (checkpoint)")
        ax.grid(alpha=0.3)
    # One legend for all panels: every part of the model keeps its colour everywhere.
    handles, labels = [], []
    for ax in (ax_w, ax_r):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    order = sorted(range(len(labels)), key=lambda i: list(colours).index(labels[i]) if labels[i] in colours else 0)
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside right upper", fontsize=8,
               title="part of the model")
    return _save(fig, path)
