"""Mutation audit of data_prep/ (interference.py, audio.py, wham_prepare.py, esc50_prepare.py,
synthetic_prepare.py, files.py): tests for the small wrong edits the other tests let through.

Each test names the edit it catches. Expected values are worked out by hand or with numpy /
soundfile / hashlib from the documented rule, never with the code under test.
"""

import hashlib
import json
import os
import time

import numpy as np
import soundfile as sf
import torch

from data_prep import audio
from data_prep.audio import peak_normalise, quiet_warning, read_audio_pieces
from data_prep.esc50_prepare import _manifest_prefix, dataio_prep
from data_prep.files import file_sha256
from data_prep.interference import Interference
from data_prep.wham_prepare import WhamNoise, random_crops


def _write_wav(path, samples, rate):
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, subtype="FLOAT")
    return path


# ---------------------------------------------------------------------------
# audio.py
# ---------------------------------------------------------------------------


def test_a_quiet_clip_is_scaled_to_full_scale_not_zeroed():
    """Catches `peak > EPS` -> `peak > SILENT_PEAK` in peak_normalise: a clip peaking at
    5e-5 (-86 dBFS) is divided by its peak (the docstring: only a peak at most EPS is
    silence), so it becomes (1, -0.5), not zeros."""
    sig = torch.tensor([[5e-5, -2.5e-5], [2e-10, 1e-10]], dtype=torch.float64)
    assert peak_normalise(sig).tolist() == [[1.0, -0.5], [1.0, 0.5]]


def test_quiet_warning_fires_below_minus_80_dbfs_only():
    """Catches a wrong threshold in quiet_warning: 9e-5 is 20 log10(9e-5) = -80.9 dBFS (below
    -80: warned, rounded to -81), 1.1e-4 is -79.2 dBFS (not warned)."""
    assert quiet_warning("a.wav", 9e-5).startswith("a.wav peaks at -81 dBFS, below -80 dBFS")
    assert quiet_warning("a.wav", 1.1e-4) is None
    assert quiet_warning("a.wav", 5e-4) is None


class _ClaimsThreeSeconds(audio.sf.SoundFile):
    """A soundfile whose header says 3 s while the file holds 2 s (a truncated file)."""

    frames = property(lambda self: 3 * 8000)


def test_a_file_ending_on_a_piece_boundary_yields_no_empty_piece(tmp_path, monkeypatch):
    """Catches `kept = samples_at(ends_at, ...) - start` losing its `- start`: a file of 2 s
    whose header claims 3 s, read in 1 s pieces, is its two pieces (the samples written,
    compared with numpy), never a third, empty one (an empty batch crashes the STFT)."""
    rate = 8000
    values = np.random.default_rng(0).uniform(-0.5, 0.5, 2 * rate).astype(np.float32)
    path = _write_wav(tmp_path / "cut.wav", values, rate)
    monkeypatch.setattr(audio.sf, "SoundFile", _ClaimsThreeSeconds)
    warnings = []
    pieces = list(read_audio_pieces(path, rate, rate, warnings))
    assert [len(piece) for piece in pieces] == [rate, rate]
    np.testing.assert_array_equal(torch.cat(pieces).numpy(), values)
    assert len(warnings) == 1 and "ends at 2.00 s, though its header says 3.00 s" in warnings[0]


# ---------------------------------------------------------------------------
# interference.py
# ---------------------------------------------------------------------------


def test_speech_is_read_at_the_evaluation_rate(tmp_path):
    """Catches `load_clip(path, 16000, ...)` for the rate given: at 8 kHz a speech file
    recorded at 8 kHz is its own samples (cropped to the clip, peak-normalised with numpy),
    not a 16 kHz resampling of them."""
    rate, n = 8000, 400
    speech = np.random.default_rng(1).uniform(-0.4, 0.4, 1000).astype(np.float32)
    folder = tmp_path / "speech"
    folder.mkdir()
    _write_wav(folder / "a.wav", speech, rate)
    interference = Interference("speech", [0, 1], 0, rate, n, speech_folder=str(folder))
    expected = speech[:n] / np.abs(speech[:n]).max()
    got = interference.interference(0, 2)
    assert got.shape == (2, n)
    np.testing.assert_allclose(got.numpy(), np.stack([expected, expected]), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# wham_prepare.py
# ---------------------------------------------------------------------------


def test_a_short_clip_is_tiled_with_its_own_samples_beside_a_longer_one():
    """Catches the tiling index taken modulo the padded batch length instead of the clip's
    own: a 3-sample clip beside a 10-sample one is cropped to 8 samples as a circular
    repetition of its 3 values (numpy rolls), never the zeros that pad it in the batch."""
    short = torch.tensor([1.0, 2.0, 3.0])
    long = torch.arange(11.0, 21.0)
    for seed in range(6):
        crops = random_crops([short, long], 8, torch.Generator().manual_seed(seed))
        tilings = [np.resize(np.roll(short.numpy(), -s), 8).tolist() for s in range(3)]
        assert crops[0].tolist() in tilings
        windows = [long.numpy()[s : s + 8].tolist() for s in range(3)]
        assert crops[1].tolist() in windows


def _noise_files(folder):
    folder.mkdir()
    rng = np.random.default_rng(2)
    return [_write_wav(folder / f"{k}.wav", rng.uniform(-0.5, 0.5, 3000 + 500 * k), 22050) for k in range(3)]


def test_wham_noise_crops_are_rounded_to_the_clip_length(tmp_path):
    """Catches int() for round() in WhamNoise.n_samples: 0.7 s at 22050 Hz is
    0.7 * 22050 = 15434.999999999998, i.e. 15435 samples (as the clips are)."""
    noise = WhamNoise(_noise_files(tmp_path / "noise"), 22050, 0.7)
    assert noise.n_samples == 15435
    assert next(iter(noise)).shape == (15435,)


def test_a_seeded_wham_noise_iterates_the_same_crops(tmp_path):
    """Catches the seed ignored when iterating: two sources seeded 3 yield the same crops."""
    files = _noise_files(tmp_path / "noise")
    first, second = (iter(WhamNoise(files, 22050, 0.05, seed=3)) for _ in range(2))
    for _ in range(4):
        assert torch.equal(next(first), next(second))


# ---------------------------------------------------------------------------
# esc50_prepare.py
# ---------------------------------------------------------------------------


def test_dataio_prep_clips_are_the_rounded_length(tmp_path):
    """Catches int() for round() in dataio_prep: clips of 0.7 s at 22050 Hz hold 15435
    samples (0.7 * 22050 = 15434.999999999998), the file's first ones, peak-normalised."""
    rate = 22050
    values = np.random.default_rng(3).uniform(-0.3, 0.3, rate).astype(np.float32)
    _write_wav(tmp_path / "a.wav", values, rate)
    manifest = tmp_path / "m.json"
    entry = {"wav": "{data_root}/a.wav", "classID": 0, "class_string": "dog", "fold": 1, "duration": 1.0}
    manifest.write_text(json.dumps({"a": entry}))
    hparams = {
        "data_folder": str(tmp_path),
        "save_folder": str(tmp_path / "save"),
        "train_annotation": str(manifest),
        "valid_annotation": str(manifest),
        "test_annotation": str(manifest),
        "sample_rate": rate,
        "signal_length_s": 0.7,
    }
    datasets, _ = dataio_prep(hparams)
    sig = datasets["test"][0]["sig"]
    expected = values[:15435] / np.abs(values[:15435]).max()
    assert sig.shape == (15435,)
    np.testing.assert_allclose(sig.numpy(), expected, rtol=0, atol=1e-6)


def test_an_audio_folder_outside_the_data_folder_is_written_absolute(tmp_path):
    """Catches `relative.startswith("../")` dropped: an audio folder beside the data folder
    (../audio) is an absolute path in the manifests, which a moved data folder keeps."""
    assert _manifest_prefix(tmp_path / "data", tmp_path / "audio") == f"{tmp_path / 'audio'}/"
    assert _manifest_prefix(tmp_path / "data", tmp_path / "data" / "wavs") == "{data_root}/wavs/"


# ---------------------------------------------------------------------------
# files.py
# ---------------------------------------------------------------------------


def test_a_file_rewritten_in_place_with_its_modification_time_kept_is_hashed_again(tmp_path):
    """Catches the change time left out of file_sha256's cache key: a checkpoint rewritten in
    place (same inode, same size) and given back its modification time, as `cp -p` onto an
    existing file does, has a new change time only; its digest is hashlib's of the new bytes."""
    path = tmp_path / "a.ckpt"
    path.write_bytes(b"classifier a")
    before = os.stat(path)
    assert file_sha256(str(path)) == hashlib.sha256(b"classifier a").hexdigest()
    time.sleep(0.05)  # past the file system's timestamp granularity
    with open(path, "r+b") as fout:
        fout.write(b"classifier b")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    assert file_sha256(str(path)) == hashlib.sha256(b"classifier b").hexdigest()
