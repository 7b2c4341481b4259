"""Audit tests (mutation testing) of data_prep/audio.py and data_prep/files.py.

Guards what tests/unit/test_audio.py and tests/unit/test_files.py leave open: the length and
the frequency of a resampled tone (against the analytic sinusoid and an FFT peak), the clip
kept from the start and zero-padded on the right, 16-bit samples read as exact fractions,
the NaN count of a part read at another rate and the part its message names, the errors
that name a file, write_json's refusal of NaN, the atomic writer's temporary file when
another writer starts or finishes beside it, and file_sha256 over more than one block.
Expected values are worked out by hand, on small real files in tmp_path.
"""

import fcntl
import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep import files
from data_prep.audio import (
    MANIFEST_FIX,
    audio_length,
    check_audio_file,
    load_clip,
    pad_or_crop,
    read_audio,
    read_audio_pieces,
    read_user_file,
)
from data_prep.files import file_sha256, partial_path, write_atomic, write_json, write_text

RATE = 16000


def _write(path, signal, sample_rate, **kwargs):
    sf.write(str(path), signal, sample_rate, **kwargs)
    return path


def _read(path):
    with open(path, encoding="utf-8") as fin:
        return fin.read()


# ---- audio.py: resampling, channels ---------------------------------------------------------


def test_a_stereo_1_khz_tone_at_8_khz_is_the_mono_tone_at_16_khz(tmp_path):
    """L = 0.5 sin, R = 0.3 sin (1 kHz, 1 s at 8 kHz): mono is 0.4 sin, 16000 samples at
    16 kHz, sample n = 0.4 sin(2 pi 1000 n / 16000) (away from the file's edges), its FFT
    peak at 1000 Hz."""
    t = np.arange(8000) / 8000
    tone = np.sin(2 * np.pi * 1000 * t)
    path = _write(
        tmp_path / "tone.wav", np.stack([0.5 * tone, 0.3 * tone], axis=1), 8000, subtype="FLOAT"
    )
    sig = read_audio(path, RATE).numpy()
    assert sig.shape == (16000,)
    expected = 0.4 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.abs(sig - expected)[200:-200].max() < 1e-3
    assert np.argmax(np.abs(np.fft.rfft(sig))) * RATE / len(sig) == 1000.0


def test_a_file_of_44101_frames_at_44_1_khz_is_16001_samples_at_16_khz(tmp_path):
    """44101 * 16000 / 44100 = 16000.36: the resampled file has 16001 samples (the ceiling),
    its header says so, and its pieces add up to it; a 1 kHz tone stays that tone."""
    t = np.arange(44101) / 44100
    path = _write(tmp_path / "tone.flac", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100)
    assert audio_length(path, RATE) == 16001
    assert audio_length(path, 44100) == 44101
    sig = read_audio(path, RATE).numpy()
    assert sig.shape == (16001,)
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16001) / 16000)
    assert np.abs(sig - expected)[200:-200].max() < 1e-3  # flac is 16-bit: 1.5e-5 of quantisation
    assert [len(piece) for piece in read_audio_pieces(path, RATE, 6000)] == [6000, 6000, 4001]


# ---- audio.py: 16-bit samples, crop / pad, normalisation ---------------------------------------


def test_16_bit_samples_are_read_as_k_over_32768_and_a_clip_is_padded_on_the_right(tmp_path):
    """int16 (8192, -16384, 4096, 0, 2048) is (0.25, -0.5, 0.125, 0, 0.0625) exactly; as an
    8-sample clip: zeros after it, divided by its peak 0.5."""
    samples = np.array([8192, -16384, 4096, 0, 2048], dtype=np.int16)
    path = _write(tmp_path / "short.wav", samples, RATE, subtype="PCM_16")
    assert read_audio(path, RATE).tolist() == [0.25, -0.5, 0.125, 0.0, 0.0625]
    assert load_clip(path, RATE, 8).tolist() == [0.5, -1.0, 0.25, 0.0, 0.125, 0.0, 0.0, 0.0]


def test_a_long_clip_keeps_its_start_normalised_by_the_peak_of_what_is_kept(tmp_path):
    """10 samples, a 4-sample clip: the first four, divided by their own peak (8192), not by
    the file's (32767 at sample 6); reading from sample 6 gives the end of the file."""
    samples = np.array([4096, -8192, 2048, 1024, 0, 0, 32767, -32768, 16384, 8], dtype=np.int16)
    path = _write(tmp_path / "long.wav", samples, RATE, subtype="PCM_16")
    assert load_clip(path, RATE, 4).tolist() == [0.5, -1.0, 0.25, 0.125]
    assert read_audio(path, RATE, start=6, n_samples=100).tolist() == [
        32767 / 32768,
        -1.0,
        0.5,
        8 / 32768,
    ]
    silent = _write(tmp_path / "silent.wav", np.zeros(6, dtype=np.int16), RATE, subtype="PCM_16")
    assert load_clip(silent, RATE, 4).tolist() == [0.0] * 4  # not NaN


def test_a_batch_of_clips_is_cropped_and_padded_along_time():
    """(2, 5) clips (inference pads a batch): cropped to the first 3 samples of each row,
    padded with zeros after the 5th of each row, never along the batch."""
    batch = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [-1.0, -2.0, -3.0, -4.0, -5.0]])
    assert pad_or_crop(batch, 3).tolist() == [[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]
    assert pad_or_crop(batch, 7).tolist() == [
        [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0],
        [-1.0, -2.0, -3.0, -4.0, -5.0, 0.0, 0.0],
    ]


# ---- audio.py: NaN / inf at another rate --------------------------------------------------------


@pytest.fixture
def nan_48k(tmp_path):
    """1 s of 0.25 at 48 kHz, stereo (96000 values), non-finite: frames [0, 300) both channels
    (600 values: output samples [0, 100) at 16 kHz), frame 15000 left and 15001 right (2: at
    output sample 5000, a piece boundary of 5000-sample pieces), frame 47999 right (1)."""
    signal = np.full((48000, 2), 0.25, dtype=np.float32)
    signal[:300] = np.nan
    signal[15000, 0] = np.inf
    signal[15001, 1] = np.nan
    signal[47999, 1] = -np.inf
    return _write(tmp_path / "nan48k.wav", signal, 48000, subtype="FLOAT")


def test_non_finite_values_at_48_khz_are_counted_once_not_with_the_resampling_context(nan_48k):
    """Every value is counted in the one piece it belongs to: 603 of 96000, whatever the
    pieces, though the filter's context of pieces 0 and 1 reaches frames 15000 and 15001."""
    for piece_samples in (5000, 16000):
        warnings = []
        assert (
            sum(len(piece) for piece in read_audio_pieces(nan_48k, RATE, piece_samples, warnings))
            == 16000
        )
        assert warnings == [
            f"{nan_48k}: 603 of 96000 sample values are NaN or infinite; they are read as 0."
        ]


def test_a_part_read_at_another_rate_counts_its_own_values_and_names_its_samples(nan_48k):
    """Samples [5000, 5100) at 16 kHz are frames [15000, 15300): 2 of 600; [5100, 5200) holds
    none (its context does); [15950, 16000) (asked up to 16950) is frames [47850, 48000): 1 of
    300; [0, 100) is frames [0, 300), all NaN: refused."""
    warnings = []
    read_audio(nan_48k, RATE, start=5000, n_samples=100, warnings=warnings)
    read_audio(nan_48k, RATE, start=5100, n_samples=100, warnings=warnings)
    read_audio(nan_48k, RATE, start=15950, n_samples=1000, warnings=warnings)
    assert warnings == [
        f"{nan_48k} (samples 5000 to 5100 at 16000 Hz): 2 of 600 sample values are NaN or infinite; "
        "they are read as 0.",
        f"{nan_48k} (samples 15950 to 16000 at 16000 Hz): 1 of 300 sample values are NaN or infinite; "
        "they are read as 0.",
    ]
    with pytest.raises(
        ValueError,
        match=r"nan48k.wav \(samples 0 to 100 at 16000 Hz\) holds no finite sample \(all 600",
    ):
        read_audio(nan_48k, RATE, n_samples=100)


# ---- audio.py: messages that name the file ------------------------------------------------------


def test_what_is_not_audio_or_has_no_sample_is_refused_naming_the_file(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio", encoding="utf-8")
    empty = _write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(RuntimeError, match=r"^Cannot read .*notes.wav \(") as error:
        load_clip(text, RATE, RATE)
    assert str(error.value).endswith(f": {MANIFEST_FIX}.")
    not_audio = r"^--single_sample .*notes.wav is not audio that soundfile can read \(.*\): "
    with pytest.raises(
        ValueError, match=not_audio + r"give an audio file \(.wav, .flac, .ogg, .mp3\)\.$"
    ):
        check_audio_file(text, prefix="--single_sample ")
    with pytest.raises(
        ValueError, match=not_audio + r"give an audio file \(.wav, .flac, .ogg, .mp3\)\.$"
    ):
        read_user_file(text, RATE, prefix="--single_sample ")
    with pytest.raises(ValueError, match=not_audio + r"download it again\.$"):
        check_audio_file(text, prefix="--single_sample ", fix="download it again")
    no_audio = r"^--x .*empty.wav holds no audio \(0 samples\): there is nothing to explain\.$"
    with pytest.raises(ValueError, match=no_audio):
        check_audio_file(empty, prefix="--x ")
    with pytest.raises(ValueError, match=no_audio):
        read_user_file(empty, RATE, prefix="--x ")
    assert read_audio(empty, RATE).shape == (0,)


def test_a_float_file_of_no_finite_sample_is_refused_before_any_set_up(tmp_path):
    """Found by a probe: `eval.py --single_sample` on an all-NaN float wav passed the header
    check and was refused only after the models were loaded. Now `check_audio_file` reads a
    float file up to its first finite value: none (NaN and inf over 3 blocks of 65536) is
    refused; one finite value in the last block passes; integer PCM is not read."""
    values = np.full(3 * 65536, np.nan, dtype=np.float32)
    values[::7] = np.inf
    all_bad = tmp_path / "all_nan.wav"
    sf.write(str(all_bad), values, RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"^--single_sample .*all_nan.wav holds no finite sample \(every sample value"):
        check_audio_file(all_bad, prefix="--single_sample ")
    values[-1] = 0.25
    one_good = tmp_path / "one_finite.wav"
    sf.write(str(one_good), values, RATE, subtype="FLOAT")
    check_audio_file(one_good)
    pcm = tmp_path / "pcm.wav"
    sf.write(str(pcm), np.zeros(100, dtype=np.float32), RATE, subtype="PCM_16")
    check_audio_file(pcm)


# ---- files.py -------------------------------------------------------------------------------


def test_write_json_writes_standard_json_and_refuses_nan_leaving_the_old_file(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    assert write_json({"accuracy": 0.5, "ids": [1]}, target) == str(target)
    assert (
        target.read_text(encoding="utf-8") == '{\n  "accuracy": 0.5,\n  "ids": [\n    1\n  ]\n}\n'
    )
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="JSON compliant"):
            write_json({"accuracy": value}, target)
    assert json.loads(target.read_text(encoding="utf-8")) == {"accuracy": 0.5, "ids": [1]}
    assert os.listdir(target.parent) == ["metrics.json"]


def test_a_writer_starting_just_after_our_rename_keeps_its_temporary_file(tmp_path, monkeypatch):
    """Was: once `os.replace` had moved `.m.json.partial` onto m.json, the cleanup removed
    whatever was at `.m.json.partial`: the file another writer had just created and locked
    there (its rename then failed with FileNotFoundError)."""
    target, other = tmp_path / "m.json", partial_path(tmp_path / "m.json")
    replace, held = os.replace, []

    def replace_then_another_writer_starts(src, dst):
        replace(src, dst)
        writing = open(other, "w", encoding="utf-8")  # noqa: SIM115 (held until the end)
        fcntl.flock(writing, fcntl.LOCK_EX)
        writing.write("the other writer's half")
        writing.flush()
        held.append(writing)

    monkeypatch.setattr(os, "replace", replace_then_another_writer_starts)
    write_text("mine", target)
    monkeypatch.undo()
    try:
        assert target.read_text(encoding="utf-8") == "mine"
        assert os.path.exists(other) and _read(other) == "the other writer's half"
    finally:
        held[0].close()


@pytest.mark.parametrize("third_writer", [False, True])
def test_a_partial_file_renamed_by_its_writer_before_our_lock_is_never_truncated(
    tmp_path, monkeypatch, third_writer
):
    """Another writer renames `.dog.png.partial` onto dog.png between our open of that name
    and our lock (and a third one may create a new `.dog.png.partial`): the file we opened is
    dog.png now. We write our own `.<pid>.partial`; dog.png stays whole until we replace it."""
    target, other = tmp_path / "dog.png", partial_path(tmp_path / "dog.png")
    other_fd = os.open(other, os.O_WRONLY | os.O_CREAT)
    os.write(other_fd, b"the other writer's png")
    os.close(other_fd)
    flock, held = fcntl.flock, []

    def other_writer_finishes_first(fd, operation):
        monkeypatch.setattr(fcntl, "flock", flock)
        os.replace(other, target)
        if third_writer:
            writing = open(other, "w", encoding="utf-8")  # noqa: SIM115 (held until the end)
            flock(writing, fcntl.LOCK_EX)
            writing.write("the third writer's half")
            writing.flush()
            held.append(writing)
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", other_writer_finishes_first)
    seen = []

    def write(tmp):
        seen.append((os.path.basename(tmp), target.read_bytes()))
        with open(tmp, "wb") as fout:
            fout.write(b"mine")

    write_atomic(target, write)
    try:
        assert seen == [
            (os.path.basename(partial_path(target, pid=os.getpid())), b"the other writer's png")
        ]
        assert target.read_bytes() == b"mine"
        if third_writer:
            assert sorted(os.listdir(tmp_path)) == [".dog.png.partial", "dog.png"]
            assert _read(other) == "the third writer's half"
        else:
            assert os.listdir(tmp_path) == ["dog.png"]
    finally:
        for writing in held:
            writing.close()


def test_a_write_leaves_no_descriptor_open(tmp_path):
    """The lock's descriptor is closed after each write (a run writes thousands of files)."""
    before = len(os.listdir("/proc/self/fd"))
    for index in range(5):
        write_text(str(index), tmp_path / "a.txt")
    assert len(os.listdir("/proc/self/fd")) == before


def test_file_sha256_hashes_every_block_once_per_version(tmp_path, monkeypatch):
    """A 2.5 MiB file (three 1 MiB reads) hashes as hashlib's digest of all its bytes, read
    once for two calls and again once rewritten in place; no file or a folder is None."""
    data = np.random.default_rng(0).integers(0, 256, 5 * 2**19, dtype=np.uint8).tobytes()
    path = tmp_path / "classifier.ckpt"
    path.write_bytes(data)
    opened = []

    def spy(name, *args, **kwargs):
        opened.append(name)
        return open(name, *args, **kwargs)

    monkeypatch.setattr(files, "open", spy, raising=False)
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    assert len(opened) == 1
    with open(path, "r+b") as fout:  # same inode, same size, new content
        fout.seek(2**21 + 1)
        fout.write(b"\x00\x01")
    changed = data[: 2**21 + 1] + b"\x00\x01" + data[2**21 + 3 :]
    assert file_sha256(str(path)) == hashlib.sha256(changed).hexdigest()
    assert len(opened) == 2
    assert file_sha256(str(tmp_path / "missing.ckpt")) is None
    assert file_sha256(str(tmp_path)) is None
