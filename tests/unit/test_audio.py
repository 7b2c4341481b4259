"""data_prep/audio.py, the one audio reader: a file is read only as far as it is used, in
pieces that equal the whole, and NaN / infinite samples are counted, never silently zeroed."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from data_prep import audio
from data_prep.audio import load_clip, read_audio, read_audio_pieces, read_user_file

RATE = 16000


def write(path, signal, sample_rate, **kwargs):
    sf.write(str(path), np.asarray(signal, dtype=np.float32), sample_rate, **kwargs)
    return path


@pytest.fixture
def frames_read(monkeypatch):
    """The frames each soundfile read returned, in order (a spy on SoundFile.read)."""
    counts = []
    read = sf.SoundFile.read

    def spy(self, *args, **kwargs):
        data = read(self, *args, **kwargs)
        counts.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    return counts


def test_the_start_of_a_long_file_reads_only_the_start(tmp_path, frames_read):
    """Was: the whole file read and resampled to explain its first second (an hour: 5.35 GB)."""
    rate = 48000
    path = write(tmp_path / "long.wav", 0.1 * np.ones((20 * rate, 2)), rate, subtype="PCM_16")  # 20 s
    clip = read_audio(path, RATE, n_samples=RATE)  # the first 1 s at 16 kHz
    assert clip.shape == (RATE,)
    assert sum(frames_read) < 1.01 * rate  # 1 s and the resampling filter's few frames
    frames_read.clear()
    assert load_clip(path, RATE, RATE).shape == (RATE,) and sum(frames_read) < 1.01 * rate
    frames_read.clear()
    assert read_user_file(path, RATE, n_samples=RATE).shape == (RATE,) and sum(frames_read) < 1.01 * rate


@pytest.mark.parametrize(
    ("rate", "channels", "extension"), [(48000, 2, "wav"), (44100, 1, "flac"), (22050, 2, "ogg"), (8000, 1, "wav")]
)
def test_pieces_and_parts_equal_the_whole_file(tmp_path, frames_read, rate, channels, extension):
    generator = np.random.default_rng(0)
    path = write(tmp_path / f"noise.{extension}", 0.3 * generator.standard_normal((int(2.3 * rate), channels)), rate)
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    whole = torchaudio.functional.resample(torch.from_numpy(data).mean(dim=1), rate, RATE)
    frames_read.clear()
    pieces = list(read_audio_pieces(path, RATE, 5000))
    assert [len(piece) for piece in pieces] == [5000] * 7 + [len(whole) - 35000]
    assert torch.allclose(torch.cat(pieces), whole, atol=1e-6)
    assert max(frames_read) < 2 * 5000 * rate / RATE  # a piece (and its context) at a time, not the file
    assert sum(frames_read) <= len(data)  # every frame decoded once
    assert torch.allclose(read_audio(path, RATE, start=12345, n_samples=3000), whole[12345:15345], atol=1e-6)
    assert torch.allclose(read_audio(path, RATE, n_samples=7000), whole[:7000], atol=1e-6)


def test_nan_and_inf_samples_are_counted_and_a_file_of_none_else_is_refused(tmp_path, caplog):
    """Was: NaN / Inf set to 0 without a word, and an all-NaN file called silent."""
    signal = np.full((RATE, 2), 0.25, dtype=np.float32)
    signal[:3, 0] = np.nan
    signal[10, 1] = np.inf
    path = write(tmp_path / "some_nan.wav", signal, RATE, subtype="FLOAT")
    warnings = []
    with caplog.at_level(logging.WARNING, logger=audio.__name__):
        sig = read_audio(path, RATE, warnings=warnings)
    assert warnings == [f"{path}: 4 of {2 * RATE} sample values are NaN or infinite; they are read as 0."]
    assert warnings[0] in caplog.text
    assert sig[:3].tolist() == [0.125] * 3 and sig[10] == 0.125  # the other channel is kept
    pieces_warnings = []
    assert torch.equal(torch.cat(list(read_audio_pieces(path, RATE, 3000, pieces_warnings))), sig)
    assert pieces_warnings == warnings  # counted once over the pieces

    nothing = write(tmp_path / "all_nan.wav", np.full(RATE, np.nan), RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"all_nan.wav holds no finite sample \(all 16000 sample values"):
        read_audio(nothing, RATE)
    with pytest.raises(ValueError, match=r"^--single_sample .*all_nan.wav holds no finite sample"):
        read_user_file(nothing, RATE, prefix="--single_sample ")
    with pytest.raises(ValueError, match="holds no finite sample"):
        list(read_audio_pieces(nothing, RATE, 3000))


def test_peak_normalise_scales_each_signal_by_its_own_peak():
    """(0.5, -0.25) / 0.5 and (0, 2) / 2, whatever the other row holds; silence stays zeros."""
    from data_prep.audio import peak_normalise

    sig = torch.tensor([[0.5, -0.25], [0.0, 2.0], [0.0, 0.0]])
    assert peak_normalise(sig).tolist() == [[1.0, -0.5], [0.0, 1.0], [0.0, 0.0]]


def test_pieces_of_a_truncated_file_stop_where_it_ends_and_a_damaged_one_is_named(tmp_path, caplog):
    """Found by a new-user probe: an mp3 cut to its first third still claims its whole length
    in its header (soundfile's frames: 6 s), and `read_audio_pieces` yielded empty pieces past
    the real end (an empty batch crashed `eval.py --window` in the STFT). The pieces now stop
    where the file ends, equal to what `read_audio` reads of it, with a warning naming the two
    lengths; a flac cut mid-stream, whose decoding fails, is a ValueError naming the file."""
    rng = np.random.default_rng(0)
    whole = write(tmp_path / "whole.mp3", 0.3 * rng.standard_normal(6 * RATE), RATE, format="MP3")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 3])
    assert sf.info(str(cut)).frames == 6 * RATE  # the header still says 6 s
    warnings = []
    with caplog.at_level(logging.WARNING, logger=audio.__name__):
        pieces = list(read_audio_pieces(cut, RATE, RATE, warnings))
    held = read_audio(cut, RATE)  # what the file holds, read whole
    assert 0 < len(held) < 3 * RATE and all(len(piece) for piece in pieces)
    assert torch.allclose(torch.cat(pieces), held, atol=1e-6)  # mpg123 decodes in chunks to 1 ulp
    (warning,) = warnings
    assert warning.startswith(f"{cut} ends at {len(held) / RATE:.2f} s, though its header says 6.00 s")
    assert warning in caplog.text

    flac = write(tmp_path / "whole.flac", 0.3 * rng.standard_normal(2 * 96000), 96000)
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(flac.read_bytes()[:20000])
    with pytest.raises(ValueError, match=r"damaged.flac cannot be decoded past 0.00 s \(.*\): the file is damaged"):
        list(read_audio_pieces(damaged, RATE, RATE))
