"""Files a person opens: spectrogram PNGs and wavs of interpretations, the NMF
dictionary's plots, the classifier's confusion matrix.

Everything goes through `data_prep.files.write_atomic`, so an interrupted run
never leaves a half-written file behind. (The HTML and markdown report that
gathers these files is `recipes/report.py`.)

Authors
 * audio-interpret contributors 2026
"""

import functools
import os
import tempfile
import textwrap

import numpy as np
import soundfile as sf
import torch

from data_prep.audio import EPS
from data_prep.files import write_atomic
from models.nmf import fit_activations
from recipes.core.labels import METHOD_LABELS, REFERENCE_LABELS

#: Fonts a figure falls back on, where installed, for the characters of file and class names
#: that matplotlib's default (DejaVu Sans) lacks: Chinese, Japanese, Korean and other scripts.
FALLBACK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "Droid Sans Fallback", "Arial Unicode MS",
)  # fmt: skip


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported at the first figure: half a second
    of every recipe's start-up that a process drawing nothing (a refused command, a worker
    rank) need not pay. The installed `FALLBACK_FONTS` follow the default font."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families, _ = _fonts(FALLBACK_FONTS)
    if families:
        matplotlib.rcParams["font.family"] = ["sans-serif", *families]
    return plt


@functools.cache
def _fonts(fallbacks):
    """(the installed families of `fallbacks`, the fonts a figure's text is drawn from:
    matplotlib's default sans-serif, then those)."""
    import matplotlib
    from matplotlib import font_manager, ft2font

    installed = {entry.name: entry.fname for entry in font_manager.fontManager.ttflist}
    families = tuple(name for name in fallbacks if name in installed)
    default = font_manager.findfont(font_manager.FontProperties(family=matplotlib.rcParams["font.sans-serif"][:1]))
    return families, [ft2font.FT2Font(default), *(ft2font.FT2Font(installed[name]) for name in families)]


def drawable(text):
    r"""`text` with each character that no font of the figures draws written as its code
    point (\u72d7): a file or class name in a script the installed fonts lack reads as
    itself, not as empty boxes (and matplotlib warns of no missing glyph).

    Example
    -------
    >>> drawable("chien-07.wav: predicted dog (p=0.93)")
    'chien-07.wav: predicted dog (p=0.93)'
    >>> drawable("caf\u00e9 \u03b1")  # Latin and Greek: DejaVu Sans draws them
    'café α'
    """
    _, fonts = _fonts(FALLBACK_FONTS)

    def shown(char):
        if char.isascii() or any(font.get_char_index(ord(char)) for font in fonts):
            return char
        return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"

    return "".join(shown(char) for char in text)


def _numpy(tensor):
    return tensor.detach().float().cpu().numpy()


def write_wav(path, waveform, sample_rate):
    """Writes a mono 16-bit wav atomically; the waveform is peak-limited to [-1, 1].

    A waveform louder than full scale is scaled down (never clipped), so what
    is heard is the interpretation's shape, not distortion.
    """
    audio = np.asarray(_numpy(waveform) if hasattr(waveform, "detach") else waveform, dtype=np.float32)
    audio = np.nan_to_num(audio.reshape(-1))
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    write_atomic(path, lambda tmp: sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV"))


class WavStream:
    """A mono 16-bit wav written piece by piece, for waveforms too long to hold at once.

    The file is the one `write_wav` writes of the pieces end to end
    (peak-limited to [-1, 1] over the whole waveform, written atomically): the
    pieces go to a raw float32 file beside it, converted in bounded pieces once
    the peak is known. Used as a context manager: an error on the way leaves no
    file behind.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "a.wav")
    ...     with WavStream(path, 8000) as wav:
    ...         wav.append(torch.ones(3))
    ...         wav.append(-2 * torch.ones(2))
    ...     sf.read(path)[0].round(2).tolist(), sorted(os.listdir(tmp))
    ([0.5, 0.5, 0.5, -1.0, -1.0], ['a.wav'])
    """

    CONVERT_SAMPLES = 2**20  # samples converted to 16 bits at a time

    def __init__(self, path, sample_rate):
        self.path, self.sample_rate, self.peak = os.fspath(path), sample_rate, 0.0
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        handle, self._raw_path = tempfile.mkstemp(
            prefix=f".{os.path.basename(self.path)}.", suffix=".f32", dir=folder
        )
        self._raw = os.fdopen(handle, "wb")

    def append(self, waveform):
        """Adds samples at the end: a tensor or array, flattened."""
        audio = np.asarray(_numpy(waveform) if hasattr(waveform, "detach") else waveform, dtype=np.float32)
        audio = np.nan_to_num(audio.reshape(-1))
        if audio.size:
            self.peak = max(self.peak, float(np.abs(audio).max()))
        audio.tofile(self._raw)

    def _write(self, tmp):
        with (
            open(self._raw_path, "rb") as raw,
            sf.SoundFile(tmp, "w", self.sample_rate, 1, subtype="PCM_16", format="WAV") as out,
        ):
            while (piece := np.fromfile(raw, dtype=np.float32, count=self.CONVERT_SAMPLES)).size:
                out.write(piece / self.peak if self.peak > 1.0 else piece)

    def close(self):
        """Writes the wav; returns its path."""
        self._raw.close()
        try:
            write_atomic(self.path, self._write)
        finally:
            os.remove(self._raw_path)
        return self.path

    def abort(self):
        """Drops what was appended; writes nothing."""
        self._raw.close()
        os.remove(self._raw_path)

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            self.close()
        else:
            self.abort()


def save_figure(fig, path, dpi=90, tight=True):
    """Saves a matplotlib figure as a PNG atomically and closes it."""
    plt = _pyplot()
    bbox = "tight" if tight else None
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox))
    plt.close(fig)


def _spectrogram_extent(n_frames, n_bins, sample_rate, duration):
    """imshow's extent (left, right, bottom, top) of a (frames, bins) |STFT| image in seconds and
    kHz: frame k centred at k * hop (a centred STFT: the first frame at 0 s, the last at the
    clip's end), bin f at f * sample_rate / (2 (n_bins - 1)) (bin 0 at 0 Hz, the last at Nyquist).

    Example
    -------
    >>> _spectrogram_extent(3, 5, 16000, 2.0)
    (-0.5, 2.5, -1.0, 9.0)
    """
    hop = duration / max(n_frames - 1, 1)
    bin_khz = sample_rate / 2000 / max(n_bins - 1, 1)
    return (-hop / 2, duration + hop / 2, -bin_khz / 2, sample_rate / 2000 + bin_khz / 2)


#: A clip PNG's geometry, in inches: its fixed margins and gaps, room for the tick labels and
#: axis labels drawn there (10 pt: up to 4 characters on a colour bar, 3 on the frequency
#: axis), and a title line's height (10 pt).
_CLIP_LAYOUT = {
    "left": 0.62, "bottom": 0.5, "top": 0.3, "title_line": 0.19, "gap": 0.35, "bar_pad": 0.08,
    "bar": 0.14, "bar_labels": 0.7, "char": 0.09,
}  # fmt: skip


def _clip_width(n_panels):
    """A clip PNG's width in inches: 4 per panel, 1 for the colour bars."""
    return 4 * n_panels + 1


def _clip_layout(n_panels, n_title_lines):
    """A clip PNG's figure size (inches) and its axes' rects (left, bottom, width, height in
    figure fractions): the `n_panels` panels side by side, the mask's colour bar after the
    second panel, the spectrograms' bar at the right, and `n_title_lines` lines of title above.

    Fixed from the figure's parts, not solved from its text: matplotlib's constrained layout
    and a tight bounding box (what the PNG had before) make a clip's PNG take twice as long.

    Example
    -------
    >>> size, panels, mask_bar, bar = _clip_layout(4, 1)  # 17 in less 3.16 of margins and bars
    >>> size, [round(rect[2] * size[0], 2) for rect in panels]
    ((17, 3.4), [3.46, 3.46, 3.46, 3.46])
    >>> right = (1 - bar[0] - bar[2]) * size[0]  # the spectrograms' bar's labels
    >>> top = (1 - panels[0][1] - panels[0][3]) * size[1]  # a title line and the panels' titles
    >>> round(right, 2), round(top, 2), round(mask_bar[0] * size[0], 2)  # 0.62 + 3.46 + 0.35 + 3.46 + 0.08
    (0.7, 0.49, 7.97)
    """
    geometry = _CLIP_LAYOUT
    width, height = _clip_width(n_panels), 3.4
    mask_bar_room = geometry["bar_pad"] + geometry["bar"] + geometry["bar_labels"]
    fixed = geometry["left"] + (n_panels - 2) * geometry["gap"] + 2 * mask_bar_room  # each bar with its labels
    panel = (width - fixed) / n_panels
    top = geometry["top"] + geometry["title_line"] * n_title_lines
    bottom, panel_height = geometry["bottom"], height - geometry["bottom"] - top
    lefts, x = [], geometry["left"]
    for k in range(n_panels):
        lefts.append(x)
        x += panel + (mask_bar_room if k == 1 else geometry["gap"])
    mask_bar_left = lefts[1] + panel + geometry["bar_pad"]
    bar_left = lefts[-1] + panel + geometry["bar_pad"]

    def rect(left, w):
        return (left / width, bottom / height, w / width, panel_height / height)

    panels = [rect(left, panel) for left in lefts]
    return (width, height), panels, rect(mask_bar_left, geometry["bar"]), rect(bar_left, geometry["bar"])


def _title_lines(title, width):
    """`title` made `drawable` and broken at spaces into lines that fit a figure `width` inches
    wide (10 pt), as `_clip_layout` keeps room for them: none for no title.

    Example
    -------
    >>> _title_lines("clip: predicted dog (p=0.90)", 13), _title_lines("", 13)
    (['clip: predicted dog (p=0.90)'], [])
    >>> [len(line) for line in _title_lines("a" * 100 + " " + "b" * 100, 13)]  # 140 a line
    [100, 100]
    """
    chars = max(20, int((width - 0.4) / _CLIP_LAYOUT["char"]))
    return textwrap.wrap(drawable(title), chars) if title else []


def plot_interpretation(X, mask, X_int, title="", X_target=None, sample_rate=None, duration=None):
    """Input / mask / interpretation spectrograms side by side (frequency up), and, when the
    clip's target event alone is known (`X_target`, a dataset with exact sources), its
    spectrogram on the same scale: what the interpretation should show.

    With the `sample_rate` (Hz) and the clip's `duration` (s), the axes are time (s) and
    frequency (kHz); without them (frames pooled for a long file), frames and frequency bins.
    The spectrograms share one colour bar (log1p |STFT|), the mask has its own (0 to 1).
    The layout is fixed (`_clip_layout`): save it with `save_figure(..., tight=False)`."""
    plt = _pyplot()
    n_panels = 3 if X_target is None else 4
    lines = _title_lines(title, _clip_width(n_panels))
    size, rects, mask_bar_rect, bar_rect = _clip_layout(n_panels, len(lines))
    fig = plt.figure(figsize=size)
    axes = []
    for rect in rects:  # one frequency axis: the inner panels draw no tick labels of their own
        axes.append(fig.add_axes(rect, sharey=axes[0] if axes else None))
        if len(axes) > 1:
            axes[-1].tick_params(labelleft=False)
    panels = (("input log1p |STFT|", _numpy(X), "magma"), ("mask", _numpy(mask), "viridis"))
    panels += (("interpretation log1p |STFT| (mask applied)", _numpy(X_int), "magma"),)
    if X_target is not None:
        panels += (("target event alone log1p |STFT| (ground truth)", _numpy(X_target), "magma"),)
    vmax = float(max(_numpy(X).max(), 1e-6))
    in_units = sample_rate is not None and duration is not None
    extent = _spectrogram_extent(*_numpy(X).shape, sample_rate, duration) if in_units else None
    magnitude = None
    for ax, (name, image, cmap) in zip(axes, panels):
        limits = (0.0, 1.0) if name == "mask" else (0.0, vmax)
        shown = ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, vmin=limits[0], vmax=limits[1],
                          extent=extent)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time (s)" if in_units else "frame")
        if in_units:
            ax.set_xlim(0, duration)
            ax.set_ylim(0, sample_rate / 2000)
        if name == "mask":  # its values, 0 to 1, can be read off
            fig.colorbar(shown, cax=fig.add_axes(mask_bar_rect)).set_label("mask value", fontsize=8)
        else:
            magnitude = shown
    # one bar for the spectrograms: they are drawn on the input's scale
    fig.colorbar(magnitude, cax=fig.add_axes(bar_rect)).set_label("log1p |STFT|", fontsize=8)
    axes[0].set_ylabel("frequency (kHz)" if in_units else "frequency bin")
    if lines:  # above the panels' titles, in the room the layout keeps for its lines
        text = "\n".join(lines).replace("$", r"\$")  # a "$" would open mathtext ("b$q$.wav")
        fig.suptitle(text, fontsize=10, y=1 - 0.06 / size[1], va="top", linespacing=1.25)
    return fig


def clip_title(clip_id, predicted, probability, true_class=None):
    """A clip PNG's title: which clip, the classifier's decision (the class explained) and its
    probability, and whether it is the clip's true class when that is known.

    Example
    -------
    >>> clip_title("5-100124-A-3", "pig", 0.523, "dog")
    '5-100124-A-3: predicted pig (p=0.52), true class dog'
    >>> clip_title("c0", "dog", 0.9, "dog"), clip_title("c0", "dog", 0.9)
    ('c0: predicted dog (p=0.90), the true class', 'c0: predicted dog (p=0.90)')
    """
    title = f"{clip_id}: predicted {predicted} (p={probability:.2f})"
    if true_class is None:
        return title
    return title + (", the true class" if true_class == predicted else f", true class {true_class}")


def interpretation_paths(folder, clip_id):
    """The files `save_interpretation` writes for `clip_id`: {"png", "original", "interpretation"}.

    Example
    -------
    >>> sorted(os.path.basename(p) for p in interpretation_paths("out", "dog").values())
    ['dog.png', 'dog_interpretation.wav', 'dog_original.wav']
    """
    return {
        "png": os.path.join(folder, f"{clip_id}.png"),
        "original": os.path.join(folder, f"{clip_id}_original.wav"),
        "interpretation": os.path.join(folder, f"{clip_id}_interpretation.wav"),
    }


#: L2I's component wavs written per explained file by default (`audio-interpret
#: --max_components`, `eval.py --single_sample --max_components`): widened by
#: `keep_class`, L2I may keep nearly all of its dictionary, a wav each.
MAX_COMPONENTS = 10


def most_relevant(components, limit=None):
    """The `limit` most relevant of L2I's components, the most relevant first (ties: the lower index).

    `components` are dicts with "component" (k) and "relevance" (r_k); all of
    them, ranked, when `limit` is None.

    Example
    -------
    >>> kept = [{"component": 4, "relevance": 0.5}, {"component": 1, "relevance": 0.9},
    ...         {"component": 2, "relevance": 0.5}]
    >>> [c["component"] for c in most_relevant(kept, 2)]
    [1, 2]
    """
    ranked = sorted(components, key=lambda c: (-float(c["relevance"]), c["component"]))
    return ranked if limit is None else ranked[:limit]


def save_interpretation(
    folder, clip_id, X, mask, X_int, original, interpretation, sample_rate, title="", X_target=None
):
    """Writes `<id>.png`, `<id>_original.wav` and `<id>_interpretation.wav` in `folder`
    (the PNG with the target event's spectrogram when `X_target` is given).

    Returns
    -------
    dict
        The paths written, keyed "png", "original", "interpretation".
    """
    paths = interpretation_paths(folder, clip_id)
    n_samples = np.asarray(_numpy(original) if hasattr(original, "detach") else original).size
    figure = plot_interpretation(X, mask, X_int, title, X_target, sample_rate, n_samples / sample_rate)
    save_figure(figure, paths["png"], tight=False)
    write_wav(paths["original"], original, sample_rate)
    write_wav(paths["interpretation"], interpretation, sample_rate)
    return paths


def plot_atoms(W, path, sample_rate):
    """Writes the atoms (columns of W) sorted by spectral centroid, as an image."""
    plt = _pyplot()
    W = W.detach().cpu()
    bins = torch.arange(W.shape[0], dtype=W.dtype)[:, None]  # (F, 1)
    centroid = (W * bins).sum(0) / W.sum(0).clamp_min(EPS)  # (K,)
    atoms = W[:, centroid.argsort()]
    atoms = atoms / atoms.amax(dim=0, keepdim=True).clamp_min(EPS)
    fig, ax = plt.subplots(figsize=(8, 4))
    image = ax.imshow(
        atoms.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(0, W.shape[1], 0, sample_rate / 2000),
    )
    ax.set_xlabel("atom (sorted by spectral centroid)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(f"NMF dictionary W ({W.shape[0]} bins x {W.shape[1]} atoms), max-normalised")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).set_label("weight / the atom's maximum")
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)


def plot_reconstructions(clip_ids, X, W, path, n_iter, generator, sample_rate=None, duration=None):
    """Writes a few clips' X next to their reconstruction W H (H fitted, W fixed), on one
    colour scale per clip (log1p |STFT|, with its bar).

    Arguments
    ---------
    clip_ids : list of str
    X : torch.Tensor
        log1p magnitude spectrograms of the clips, (n, frames, F).
    W : torch.Tensor
        (F, K) dictionary.
    path : str
    n_iter : int
        Multiplicative updates of H.
    generator : torch.Generator
    sample_rate : int, optional
        With `duration` (s, the clips' length): axes in seconds and kHz, not frames and bins.
    duration : float, optional
    """
    plt = _pyplot()
    n_clips, n_frames, n_freq = X.shape
    H = fit_activations(X.reshape(-1, n_freq).T, W, n_iter=n_iter, generator=generator)
    reconstruction = (W @ H).T.reshape(n_clips, n_frames, n_freq)  # (n, frames, F)
    errors = (X - reconstruction).pow(2).sum(dim=(1, 2)).sqrt()  # (n,)
    errors = errors / X.pow(2).sum(dim=(1, 2)).sqrt().clamp_min(EPS)
    in_units = sample_rate is not None and duration is not None
    extent = _spectrogram_extent(n_frames, n_freq, sample_rate, duration) if in_units else None
    fig, axes = plt.subplots(n_clips, 2, figsize=(10.5, 2.4 * n_clips), squeeze=False, layout="constrained")
    for row in range(n_clips):  # figure panels
        vmax = float(X[row].max())
        panels = (
            (X[row], f"{drawable(str(clip_ids[row]))}: X"),
            (reconstruction[row], f"W H (rel. error {float(errors[row]):.3f})"),
        )
        for col, (image, title) in enumerate(panels):
            ax = axes[row, col]
            shown = ax.imshow(
                image.T.cpu().numpy(),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=0,
                vmax=vmax,
                extent=extent,
            )
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("time (s)" if in_units else "frame")
            ax.set_ylabel("frequency (kHz)" if in_units else "frequency bin")
            if in_units:
                ax.set_xlim(0, duration)
                ax.set_ylim(0, sample_rate / 2000)
        fig.colorbar(shown, ax=list(axes[row]), fraction=0.03, pad=0.01).set_label("log1p |STFT|", fontsize=8)
    save_figure(fig, path, dpi=90, tight=False)


def plot_confusion_matrix(counts, class_names, path):
    """Writes the confusion matrix as a PNG with the class names on both axes."""
    plt = _pyplot()
    n_classes = len(class_names)
    size = max(4.0, 0.3 * n_classes + 2.0)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(counts.numpy(), cmap="Blues")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    names = [drawable(str(name)) for name in class_names]
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = counts.diag().sum().item() / max(1, counts.sum().item())
    ax.set_title(f"test confusion matrix (accuracy {100 * accuracy:.1f} %)")
    fig.colorbar(image, ax=ax, fraction=0.046).set_label("clips")
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)


def plot_curves(curves, path, interpreter=None):
    """The mean deletion and insertion curves of one evaluation, every method on one plot.

    Arguments
    ---------
    curves : dict
        metrics.json's "curves": "fractions", "deletion_value" and "methods"
        ({method: {"deletion": [...], "insertion": [...]}}).
    path : str
        The PNG to write.
    interpreter : str, optional
        The interpreter's method name (drawn thick).

    Returns
    -------
    str
        `path`.
    """
    plt = _pyplot()
    fractions = np.asarray(curves["fractions"]) * 100
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    palette = plt.get_cmap("tab10")
    for position, (method, method_curves) in enumerate(curves["methods"].items()):
        style = {"color": palette(position % 10), "linewidth": 1.4}
        if method == interpreter:
            style.update(linewidth=2.8)
        elif method == "ground_truth":
            style.update(color="black", linestyle="--")
        elif method == "random":
            style.update(color="grey", linestyle=":")
        label = REFERENCE_LABELS.get(method, METHOD_LABELS.get(method, method))
        for ax, kind in zip(axes, ("deletion", "insertion")):
            values = np.asarray(method_curves[kind], dtype=float)
            auc = float(np.trapezoid(values, fractions / 100))
            ax.plot(fractions, values, label=f"{label} (AUC {auc:.3f})", **style)
    value = curves.get("deletion_value", "zero")
    titles = {
        "deletion": f"deletion: top bins set to {value} (lower is better)",
        "insertion": f"insertion: top bins revealed on {value} (higher is better)",
    }
    for ax, kind in zip(axes, ("deletion", "insertion")):
        ax.set_title(titles[kind], fontsize=10)
        ax.set_xlabel("bins removed / revealed, best-ranked first (%)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.7)
    axes[0].set_ylabel("p_c, mean over clips")
    save_figure(fig, path, dpi=90)
    return path


def plot_sanity(result, path):
    """Spearman and SSIM against the cumulative randomisation step, one PNG.

    Two panels side by side, one line per method (failed methods marked
    "(FAILED)" in the legend), a dashed line at the fail threshold. The x tick
    labels are the step names without their "embedding_model." prefix.

    Arguments
    ---------
    result : dict
        A `model_randomisation_check` result.
    path : str or os.PathLike
        The PNG to write (atomically).

    Returns
    -------
    str
        `path`.
    """
    plt = _pyplot()
    steps = ["none"] + [s.removeprefix("embedding_model.") for s in result["steps"][1:]]
    x = list(range(len(steps)))
    failed = set(result["failed"])
    width = max(10.0, 4.0 + 0.9 * len(steps))
    fig, axes = plt.subplots(1, 2, figsize=(width, 4.6), sharey=True)
    panels = (("spearman", "Spearman rank correlation ρ"), ("ssim", "SSIM"))
    markers = "osD^vPX*"
    for ax, (key, title) in zip(axes, panels):
        for i, (method, figures) in enumerate(result["methods"].items()):
            failed_here = method in failed
            # earlier methods get bigger markers, so lines that coincide (e.g. two
            # failed methods at 1.0) stay visible under the later ones
            ax.plot(x, figures[key], "--" if failed_here else "-", marker=markers[i % len(markers)],
                    markersize=max(3.0, 9.0 - 1.5 * i), linewidth=1.6,
                    label=f"{method} (FAILED)" if failed_here else method)
        ax.axhline(result["max_similarity"], color="grey", linestyle=":", linewidth=1.5,
                   label=f"fail threshold {result['max_similarity']:g}")
        ax.set_title(f"{title} with the trained-classifier mask")
        ax.set_xticks(x)
        ax.set_xticklabels(steps, rotation=45, ha="right")
        ax.set_xlabel("randomised down to (cumulative, top down)")
        ax.grid(alpha=0.3)
    # the panels share their y axis: the lowest value of both
    values = [v for f in result["methods"].values() for key, _ in panels for v in f[key]]
    axes[0].set_ylim(min([-0.05] + [v - 0.05 for v in values]), 1.05)
    axes[0].set_ylabel("similarity (1 = mask unchanged)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(f"Model-randomisation sanity check ({result['clips']} clips)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=9,
               frameon=False)
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return str(path)
