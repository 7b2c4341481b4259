"""Tests of data_prep/wham_prepare.py: the noise source, its download, and SNR mixing."""

import logging
import socket
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.wham_prepare import WhamNoise, combine_batches, prepare_wham, random_crops

RATE = 16000


def _snr_db(clean, mixed):
    return 10 * torch.log10(clean.pow(2).mean(1) / (mixed - clean).pow(2).mean(1))


def _closed_port_url(name="wham_noise.zip"):
    """A URL on 127.0.0.1 where nothing listens: an honest offline download."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def _noise_folder(folder):
    """Two noise files: stereo 8 kHz 0.5 s and mono 16 kHz 1 s."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(folder / "a.wav", 0.1 * rng.standard_normal((4000, 2)), 8000)
    sf.write(folder / "b.wav", 0.1 * rng.standard_normal(RATE), RATE)
    return folder


def _crop_starts(noise, residual):
    """Start of the noise crop in each residual row (best cosine match)."""
    windows = noise.unfold(0, residual.shape[1], 1)  # (W, T)
    cosine = (
        torch.nn.functional.normalize(residual, dim=1)
        @ torch.nn.functional.normalize(windows, dim=1).T
    )  # (B, W)
    best, starts = cosine.max(dim=1)
    assert torch.all(best > 0.9999)
    return starts


# ---- combine_batches -------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5])
def test_snr_is_exact(snr_db):
    torch.manual_seed(0)
    clean = torch.randn(4, 1000) * torch.tensor([[0.1], [1.0], [3.0], [0.01]])
    noise = torch.randn(3, 2500) * torch.tensor([[1.0], [0.2], [5.0]])
    mixed = combine_batches(clean, noise, snr_db=snr_db, generator=torch.Generator().manual_seed(1))
    assert mixed.shape == clean.shape
    assert torch.allclose(_snr_db(clean, mixed), torch.full((4,), snr_db), atol=0.1)


def test_snr_per_clip():
    torch.manual_seed(0)
    clean, noise = torch.randn(3, 500), torch.randn(2, 800)
    snr = torch.tensor([-3.0, 0.0, 20.0])
    mixed = combine_batches(clean, noise, snr_db=snr)
    assert torch.allclose(_snr_db(clean, mixed), snr, atol=0.1)


def test_seeded_generator_is_deterministic_and_crops_vary():
    noise = torch.randn(1, 5000, generator=torch.Generator().manual_seed(3))
    clean = torch.randn(4, 200, generator=torch.Generator().manual_seed(4))
    first = combine_batches(clean, noise, generator=torch.Generator().manual_seed(7))
    again = combine_batches(clean, noise, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, again)

    generator = torch.Generator().manual_seed(7)
    starts = [
        _crop_starts(noise[0], combine_batches(clean, noise, generator=generator) - clean)
        for _ in range(3)
    ]
    starts = torch.cat(starts)  # 12 crops
    assert len(set(starts.tolist())) > 6  # different crops within a batch and across calls
    assert (starts > 0).sum() >= 10  # not always the start of the noise


def test_short_noise_is_tiled():
    noise = torch.randn(1, 30, generator=torch.Generator().manual_seed(0))
    residual = combine_batches(torch.ones(2, 100), noise) - 1.0  # (2, 100)
    assert torch.allclose(residual[:, :70], residual[:, 30:], atol=1e-6)


def test_silent_inputs_give_no_nan():
    clean = torch.randn(2, 300, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 300, generator=torch.Generator().manual_seed(1))
    assert torch.equal(combine_batches(clean, torch.zeros(2, 300)), clean)  # silent noise

    silent = torch.zeros(2, 300)
    mixed = combine_batches(silent, noise, snr_db=6.0)  # silent clean: noise at peak 10^(-6/20)
    assert torch.isfinite(mixed).all()
    assert torch.allclose(mixed.abs().amax(1), torch.full((2,), 10 ** (-6 / 20)), atol=1e-5)

    both = combine_batches(silent, torch.zeros(1, 300))
    assert torch.equal(both, silent)


def test_bad_arguments():
    with pytest.raises(ValueError, match="add_wham_noise"):
        combine_batches(torch.ones(2, 10), None)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        combine_batches(torch.ones(10), torch.ones(1, 10))
    with pytest.raises(ValueError, match="N, T_noise"):
        combine_batches(torch.ones(2, 10), torch.ones(1, 0))


# ---- prepare_wham -------------------------------------------------------------------------


def test_prepare_wham_off_is_none(tmp_path):
    assert prepare_wham(tmp_path / "nowhere", False, RATE, 1.0, None) is None


@pytest.mark.parametrize("folder", [None, ""])
def test_prepare_wham_without_folder(folder):
    with pytest.raises(ValueError, match="wham_folder"):
        prepare_wham(folder, True, RATE, 1.0, None)


def test_prepare_wham_offline_is_a_clear_error(tmp_path):
    wham = tmp_path / "wham"
    with pytest.raises(RuntimeError) as err:
        prepare_wham(wham, True, RATE, 1.0, None, download_url=_closed_port_url())
    assert "wham_noise.zip" in str(err.value) and "add_wham_noise: False" in str(err.value)
    assert not (wham / "wham_noise").exists()
    assert not [p for p in tmp_path.rglob("*") if ".download-" in p.name]


def test_prepare_wham_reads_mono_resampled_crops(tmp_path, caplog):
    folder = _noise_folder(tmp_path / "wham" / "wham_noise" / "tr")
    (folder / "broken.wav").write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        source = prepare_wham(tmp_path / "wham", True, RATE, 0.25, None)
    assert "broken.wav" in caplog.text and "Skipped 1" in caplog.text
    assert isinstance(source, WhamNoise) and len(source) == 2
    assert source[0].shape == (RATE // 2,)  # 0.5 s stereo at 8 kHz -> mono 16 kHz
    clip = next(iter(source))
    assert clip.shape == (RATE // 4,) and torch.isfinite(clip).all()

    clean = torch.randn(3, 3000)
    first = combine_batches(clean, source, snr_db=5.0, generator=torch.Generator().manual_seed(2))
    again = combine_batches(clean, source, snr_db=5.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again)
    assert torch.allclose(_snr_db(clean, first), torch.full((3,), 5.0), atol=0.1)


def test_prepare_wham_custom_folder_without_audio(tmp_path):
    (tmp_path / "noise").mkdir()
    with pytest.raises(FileNotFoundError, match="No readable noise"):
        prepare_wham(tmp_path / "wham", True, RATE, 1.0, tmp_path / "noise")


def noise_archive(tmp_path, split="tr"):
    """A local WHAM!-like zip (tmp_path/wham_noise.zip) holding two noise wavs under wham_noise/<split>/."""
    source = _noise_folder(tmp_path / "source")
    archive = tmp_path / "wham_noise.zip"
    with zipfile.ZipFile(archive, "w") as fzip:
        for path in sorted(source.iterdir()):
            fzip.write(path, f"wham_noise/{split}/{path.name}")
    return archive


def test_prepare_wham_downloads_a_local_archive(tmp_path):
    archive = noise_archive(tmp_path)
    wham = tmp_path / "wham"
    noise = prepare_wham(wham, True, RATE, 0.5, None, download_url=archive.as_uri())
    assert sorted(p.name for p in (wham / "wham_noise" / "tr").iterdir()) == ["a.wav", "b.wav"]
    assert len(noise) == 2 and not [p for p in wham.iterdir() if ".download-" in p.name]


def test_random_crops_start_anywhere_from_0_to_the_last_start():
    """A noise exactly as long as the clip is itself (one start: 0); one sample longer has two
    starts, 0 and 1, and both are drawn."""
    noise = torch.arange(1.0, 9.0)[None]  # (1, 8)
    assert random_crops(noise, 8).tolist() == [list(range(1, 9))]
    firsts = random_crops(noise.expand(200, 8), 7, torch.Generator().manual_seed(0))[:, 0]
    assert set(firsts.tolist()) == {1.0, 2.0}
