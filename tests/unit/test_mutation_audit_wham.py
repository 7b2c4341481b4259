"""Mutation audit of data_prep/wham_prepare.py: tests for the edits the other tests let through.

Mutants W1-W58 were applied one at a time (see the commit message for the full tally). The
tests below kill the survivors W4, W8, W10, W13, W16, W18, W19, W20, W22, W23, W24, W26, W28,
W32, W33, W34, W42, W43, W45, W49, W50, W51, W53 and W58; each names the edit it catches.
They also catch W48 (wham_audio_folder ignored by WhamMixer.from_hparams), which only the
slow integration tests caught before.

Judged equivalent (no test can tell them apart):
 * W12 (`_wav_files` without its `folder.is_dir()` guard): `Path.glob` on a missing folder or
   on a file yields nothing, which is the `[]` of the guard.
 * W14 (`OSError` dropped from the errors `sf.info` may raise): soundfile reports missing,
   unreadable and non-audio paths (folders too) as `LibsndfileError`, a `RuntimeError`.
 * W29 (`.clamp_max(starts_range - 1)` dropped in `random_crops`): `torch.rand` < 1, and
   float32 `draw * range` only rounds up to `range` for ranges above 2**24 samples (17 min
   at 16 kHz), far beyond any noise clip.
 * W38 (`power_noise.clamp_min(SILENCE_POWER)` dropped) and W41 (`.clamp_min(EPS)` dropped
   from the silent-clean gain): the infinite gains they give only arise for silent noise
   (power <= SILENCE_POWER = EPS**2, so a peak below EPS is silent too), whose gain the
   last `torch.where` replaces by 0 before it is used.

data_prep/synthesis.py got mutants S1-S22 the same way; the tests at the end kill its two
survivors, S9 (the 4-sample floor of an event dropped) and S12 (an event divided by its power
instead of its RMS); none was judged equivalent.

Expected values are worked out by hand (constant clips whose powers are known) or from the
documented rule, never with the code under test.
"""

import types

import numpy as np
import pytest
import torch
from test_mutation_audit_data_prep import _write_wav
from test_synthetic_prepare_audit import _first_draws
from test_wham_prepare import RATE, _closed_port_url, _noise_folder, noise_archive

from data_prep import wham_prepare
from data_prep.synthesis import SIGNATURES, synthesize_clip, synthesize_event
from data_prep.wham_prepare import WhamMixer, WhamNoise, combine_batches, prepare_wham, random_crops

# ---- prepare_wham: sizes and the download ------------------------------------------------


def test_bad_sizes_are_refused_before_any_download(tmp_path):
    """W4 (`_check_sizes` dropped from prepare_wham): a zero sample rate is a ValueError
    raised before WHAM! noise is fetched, not a download attempt (here a RuntimeError)."""
    wham = tmp_path / "wham"
    with pytest.raises(ValueError, match="sample_rate"):
        prepare_wham(wham, True, 0, 1.0, None, download_url=_closed_port_url())
    assert not wham.exists()


def test_an_archive_without_tr_is_a_clear_error_and_leaves_nothing(tmp_path):
    """W8 (`required=("tr",)` dropped) and W10 (`except Exception` narrowed to OSError): an
    archive holding only wham_noise/cv/ is refused as a whole (no wham_noise/ left behind),
    with the advice of prepare_wham's RuntimeError."""
    archive = noise_archive(tmp_path, "cv")
    wham = tmp_path / "wham"
    with pytest.raises(RuntimeError) as err:
        prepare_wham(wham, True, RATE, 0.5, None, download_url=archive.as_uri())
    assert "'tr'" in str(err.value) and "add_wham_noise: False" in str(err.value)
    assert not (wham / "wham_noise").exists()


# ---- WhamNoise -----------------------------------------------------------------------------


def _constant_files(folder, values=(0.25, -0.5), length=300):
    folder.mkdir()
    return [_write_wav(folder / f"{k}.wav", np.full(length, v), RATE) for k, v in enumerate(values)]


@pytest.mark.parametrize(
    "sample_rate, signal_length_s",
    [(0, 1.0), (RATE, 0), (RATE, -1.0), (True, 1.0), (RATE, True), (16000.5, 1.0)],
)
def test_bad_sizes_are_value_errors(sample_rate, signal_length_s):
    """W22 (`> 0` -> `>= 0`), W23 (bools accepted) and W24 (non-integer rates accepted):
    each bad size is a ValueError (not the FileNotFoundError of the empty file list)."""
    with pytest.raises(ValueError, match="must be a positive"):
        WhamNoise([], sample_rate, signal_length_s)


def test_tiny_crop_length_is_one_sample(tmp_path):
    """W13 (`max(1, ...)` -> `max(0, ...)`): 16000 Hz * 1e-5 s = 0.16 rounds to 0 samples,
    raised to 1; the crops yielded hold that one sample."""
    noise = WhamNoise(_constant_files(tmp_path / "noise"), RATE, 1e-5, seed=0)
    assert noise.n_samples == 1
    assert next(iter(noise)).shape == (1,)


def test_a_zero_length_file_is_skipped(tmp_path):
    """W16 (`frames <= 0` -> `frames < 0`): a wav file with no sample is left out."""
    files = _constant_files(tmp_path / "noise", values=(0.25,))
    empty = _write_wav(tmp_path / "noise" / "empty.wav", np.zeros(0), RATE)
    noise = WhamNoise([empty] + files, RATE, 0.01)
    assert noise.files == [str(files[0])]


def test_every_file_is_drawn(tmp_path):
    """W18 (`randint(len(self) - 1)`) and W58 (`self[0]` for `self[i]`): 40 crops from a
    file of 0.25s and one of -0.5s hold both values (chance of one only: 2 * 2**-40)."""
    noise = WhamNoise(_constant_files(tmp_path / "noise"), RATE, 0.01)
    crops = noise.sample(40, 10, torch.Generator().manual_seed(0))  # (40, 10)
    assert set(crops.flatten().tolist()) == {0.25, -0.5}


def _random_files(folder):
    folder.mkdir()
    rng = np.random.default_rng(5)
    return [_write_wav(folder / f"{k}.wav", rng.uniform(-0.5, 0.5, 3000), RATE) for k in range(2)]


def _first_crops(noise, count=3):
    crops = iter(noise)
    return [next(crops) for _ in range(count)]


def test_unseeded_and_differently_seeded_sources_yield_different_crops(tmp_path):
    """W19 (an unseeded source never seeds its generator: every run the same crops) and
    W20 (`manual_seed(self.seed)` -> `manual_seed(0)`): two unseeded sources, and sources
    seeded 3 and 4, draw different 160-sample crops (of 2 files x 2841 starts)."""
    files = _random_files(tmp_path / "noise")
    unseeded = [_first_crops(WhamNoise(files, RATE, 0.01)) for _ in range(2)]
    assert not all(torch.equal(a, b) for a, b in zip(*unseeded))
    seeded = [_first_crops(WhamNoise(files, RATE, 0.01, seed=seed)) for seed in (3, 4)]
    assert not all(torch.equal(a, b) for a, b in zip(*seeded))


# ---- random_crops --------------------------------------------------------------------------


def test_an_empty_clip_is_a_value_error():
    """W26 (`lengths <= 0` -> `lengths < 0`): an empty clip is refused by name."""
    with pytest.raises(ValueError, match="empty noise clip"):
        random_crops([torch.tensor([1.0, 2.0]), torch.zeros(0)], 3)


def test_a_clip_as_long_as_the_crop_is_the_crop():
    """W28 (`lengths >= length` -> `>`): a clip exactly `length` long has one start, 0, so
    every crop is the clip itself, never a circular rotation of it."""
    clip = torch.arange(1.0, 9.0)
    crops = random_crops(clip.expand(50, 8), 8, torch.Generator().manual_seed(0))
    assert crops.tolist() == [list(range(1, 9))] * 50


# ---- combine_batches -----------------------------------------------------------------------


def test_a_1d_noise_tensor_is_one_noise_clip():
    """W32 (1-D noise not reshaped to (1, T_noise)): a constant noise of 2 (power 4) added at
    0 dB to clips of ones (power 1) is scaled by sqrt(1 / 4) = 0.5, giving 1 + 1 = 2."""
    mixed = combine_batches(torch.ones(2, 4), torch.full((6,), 2.0), snr_db=0.0)
    assert mixed.tolist() == [[2.0] * 4] * 2


def test_no_noise_clip_is_a_value_error():
    """W33 (`noise.shape[0] == 0` dropped): a (0, T) noise tensor is refused by name."""
    with pytest.raises(ValueError, match="N, T_noise"):
        combine_batches(torch.ones(2, 10), torch.ones(0, 10))


def test_every_noise_clip_of_a_tensor_is_drawn():
    """W34 (always noise clip 0): noise clips of +1 and -1 (power 1) added at 0 dB to ones
    give residuals +1 or -1; 32 clips show both (chance of one sign only: 2 * 2**-32)."""
    noise = torch.tensor([[1.0] * 20, [-1.0] * 20])
    residual = combine_batches(torch.ones(32, 5), noise, 0.0, torch.Generator().manual_seed(0)) - 1
    assert set(residual.flatten().tolist()) == {1.0, -1.0}


def test_a_clip_at_exactly_the_silence_power_counts_as_silent():
    """W42 (`power_clean > SILENCE_POWER` -> `>=`): SILENCE_POWER is the power 'at or below
    which a clip counts as silent'; (1e-10, 9.999999999999999e-11) has mean power exactly 1e-20
    (checked with numpy), so the noise (constant 0.5) is peak-normalised to 1 at 0 dB: +1."""
    clean = torch.tensor([[1e-10, 9.999999999999999e-11]], dtype=torch.float64)
    assert np.mean(np.square(clean.numpy())) == 1e-20 == wham_prepare.SILENCE_POWER
    mixed = combine_batches(clean, torch.full((1, 2), 0.5, dtype=torch.float64), snr_db=0.0)
    np.testing.assert_allclose((mixed - clean).numpy(), [[1.0, 1.0]], rtol=1e-12, atol=0)


def test_silent_but_nonzero_noise_leaves_the_clip_unchanged():
    """W43 (the silent-noise gain 0 -> 1): noise of 1e-12 (power 1e-24, below 1e-20) is
    silent, so the clean clip comes back exactly, not shifted by 1e-12 (float64)."""
    clean = torch.tensor([[0.5, -0.25, 0.125, 1.0]], dtype=torch.float64)
    noise = torch.full((1, 8), 1e-12, dtype=torch.float64)
    assert torch.equal(combine_batches(clean, noise, snr_db=3.0), clean)


def test_the_mixture_has_the_clean_clips_dtype():
    """W45 (`.to(clean)` dropped): float64 noise added to float32 clips gives float32 clips
    (noise 2 at 0 dB on ones: 1 + 0.5 * 2 = 2)."""
    mixed = combine_batches(torch.ones(1, 4), torch.full((1, 4), 2.0, dtype=torch.float64))
    assert mixed.dtype == torch.float32 and mixed.tolist() == [[2.0] * 4]


# ---- WhamMixer -----------------------------------------------------------------------------


def _hparams(tmp_path, add_wham_noise=True):
    return {
        "add_wham_noise": add_wham_noise,
        "wham_folder": str(tmp_path / "wham"),  # no wham_noise/ there: only the custom folder
        "wham_audio_folder": str(_noise_folder(tmp_path / "noise")),
        "sample_rate": RATE,
        "signal_length_s": 0.25,
        "wham_snr_db": 7.5,
    }


@pytest.mark.parametrize("as_namespace", [False, True])
def test_from_hparams_reads_every_key(tmp_path, monkeypatch, as_namespace):
    """W48 (wham_audio_folder ignored: here a download, refused offline), W49 (wham_snr_db
    ignored), W50 (a dict read with getattr) and W51 (sample_rate and signal_length_s
    swapped): the yaml's noise folder (2 files), 16 kHz, 0.25 s = 4000-sample crops, 7.5 dB."""
    monkeypatch.setattr(wham_prepare, "WHAM_URL", _closed_port_url())  # never the network
    hparams = _hparams(tmp_path)
    off = dict(hparams, add_wham_noise=False)
    if as_namespace:
        hparams, off = types.SimpleNamespace(**hparams), types.SimpleNamespace(**off)
    assert WhamMixer.from_hparams(off) is None
    mixer = WhamMixer.from_hparams(hparams)
    assert mixer.snr_db == 7.5 and len(mixer.noise_source) == 2
    assert mixer.noise_source.sample_rate == RATE and mixer.noise_source.n_samples == 4000


def test_a_mixer_mixes_at_0_db_by_default():
    """W53 (default snr_db 0 -> 10): noise 2 (power 4) at 0 dB on ones: 1 + 0.5 * 2 = 2."""
    assert WhamMixer(torch.full((1, 6), 2.0))(torch.ones(1, 4)).tolist() == [[2.0] * 4]


# ---- synthesis.py --------------------------------------------------------------------------


def test_an_event_lasts_at_least_4_samples():
    """S9 (`max(..., 4)` -> `max(..., 1)`): in a 10-sample clip the event draws 10-50 % of
    it, 1 to 5 samples, raised to at least 4 (the onset and offset by the documented draw
    order, `_first_draws`); seeds 0-5 include draws below 4 samples."""
    lengths = []
    for seed in range(6):
        clip = synthesize_clip("steady_tone", np.random.default_rng(seed), 10, 16000, (0.0, 0.0))
        assert (clip.onset, clip.offset) == _first_draws(np.random.default_rng(seed), 10)[:2]
        lengths.append(round(np.random.default_rng(seed).uniform(0.1, 0.5) * 10))
    assert min(lengths) < 4  # the floor was needed


@pytest.mark.parametrize("name", SIGNATURES)
def test_every_event_has_unit_rms(name):
    """S12 (`x / rms` -> `x / power`): synthesize_event's documented unit RMS, by numpy."""
    event = synthesize_event(name, np.random.default_rng(1), 1600, 16000, 1.0)
    assert np.sqrt(np.mean(event**2)) == pytest.approx(1.0, abs=1e-9)
