"""Files a person opens: interpretation spectrogram PNGs and wavs.

Everything is written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written file behind.

Authors
 * audio-interpret contributors 2026
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from recipes.common import save_atomic  # noqa: E402


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
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_atomic(lambda tmp: sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV"), path)


def save_figure(fig, path):
    """Saves a matplotlib figure atomically and closes it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_atomic(lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight"), path)
    plt.close(fig)


def plot_interpretation(X, mask, X_int, title=""):
    """Input / mask / interpretation spectrograms side by side (frequency up)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
    panels = (("input log1p |STFT|", _numpy(X), "magma"), ("mask", _numpy(mask), "viridis"))
    panels += (("interpretation (mask * input)", _numpy(X_int), "magma"),)
    vmax = float(max(_numpy(X).max(), 1e-6))
    for ax, (name, image, cmap) in zip(axes, panels):
        limits = (0.0, 1.0) if name == "mask" else (0.0, vmax)
        ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, vmin=limits[0], vmax=limits[1])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("frequency bin")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_interpretation(folder, clip_id, X, mask, X_int, original, interpretation, sample_rate, title=""):
    """Writes `<id>.png`, `<id>_original.wav` and `<id>_interpretation.wav` in `folder`.

    Returns
    -------
    dict
        The paths written, keyed "png", "original", "interpretation".
    """
    paths = {
        "png": os.path.join(folder, f"{clip_id}.png"),
        "original": os.path.join(folder, f"{clip_id}_original.wav"),
        "interpretation": os.path.join(folder, f"{clip_id}_interpretation.wav"),
    }
    save_figure(plot_interpretation(X, mask, X_int, title), paths["png"])
    write_wav(paths["original"], original, sample_rate)
    write_wav(paths["interpretation"], interpretation, sample_rate)
    return paths
