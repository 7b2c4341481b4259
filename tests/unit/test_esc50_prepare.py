"""Tests of data_prep/esc50_prepare.py: manifests, download, errors, the audio pipeline."""

import csv
import functools
import http.server
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import types
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.esc50_prepare import (
    _manifest_prefix,
    check_folds,
    dataio_prep,
    prepare_esc50,
    warn_long_clips,
)

CSV_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
RATE = 16000


def _sine(seconds, rate=RATE, freq=440.0, channels=1):
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t).astype("float32")
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def _clip(fold, target, category, take="A", audio=None, rate=RATE):
    """One csv row plus what to write as its file (array, or raw bytes)."""
    name = f"{fold}-{100 + target}-{take}-{target}.wav"
    return {
        "filename": name,
        "fold": fold,
        "target": target,
        "category": category,
        "audio": _sine(1.0) if audio is None else audio,
        "rate": rate,
    }


def _default_clips():
    return [
        _clip(1, 3, "cow"),
        _clip(2, 1, "rooster"),
        _clip(3, 3, "cow", "B"),
        _clip(4, 1, "rooster"),
        _clip(5, 3, "cow"),
    ]


def _write_dataset(root, clips, columns=CSV_COLUMNS):
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(columns)
        for clip in clips:
            row = {**clip, "esc10": "False", "src_file": 100 + clip["target"], "take": "A"}
            writer.writerow([row[column] for column in columns])
    for clip in clips:
        path = root / "audio" / clip["filename"]
        if isinstance(clip["audio"], bytes):
            path.write_bytes(clip["audio"])
        else:
            sf.write(path, clip["audio"], clip["rate"])
    return root


def _manifests(folder):
    return {split: folder / f"{split}.json" for split in ("train", "valid", "test")}


def _prepare(data_folder, manifest_folder, **kwargs):
    paths = _manifests(manifest_folder)
    prepare_esc50(data_folder, None, paths["train"], paths["valid"], paths["test"], **kwargs)
    return {split: json.loads(path.read_text()) for split, path in paths.items()}


def _hparams(data_folder, manifest_folder, save_folder, sample_rate=RATE, signal_length_s=1.0):
    paths = _manifests(manifest_folder)
    return {
        "data_folder": str(data_folder),
        "save_folder": str(save_folder),
        "train_annotation": str(paths["train"]),
        "valid_annotation": str(paths["valid"]),
        "test_annotation": str(paths["test"]),
        "sample_rate": sample_rate,
        "signal_length_s": signal_length_s,
    }


def _items(dataset):
    return {item["id"]: item for item in dataset}


def _closed_port_url(name="master.zip"):
    """A URL on 127.0.0.1 where nothing listens: an honest offline download."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """Serves a folder on 127.0.0.1 with http.server; yields (folder, base URL)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _esc50_zip(zip_path, source_root, top="ESC-50-master", skip=()):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(source_root.rglob("*")):
            relative = path.relative_to(source_root).as_posix()
            if path.is_file() and not relative.startswith(skip):
                archive.write(path, f"{top}/{relative}")
    return zip_path


def _leftovers(folder):
    return [path.name for path in folder.iterdir() if ".download-" in path.name]


# ---- real ESC-50 clips ---------------------------------------------------------------------


def test_real_clips_manifests_and_pipeline(esc50_sample_dir, tmp_path):
    manifests = _prepare(esc50_sample_dir, tmp_path / "manifest")
    assert {split: sorted(entries) for split, entries in manifests.items()} == {
        "train": ["1-100032-A-0", "2-100648-A-43", "3-103051-C-19"],
        "valid": ["4-156993-A-19"],
        "test": ["5-156999-C-19"],
    }
    entry = manifests["train"]["2-100648-A-43"]
    assert entry == {
        "wav": "{data_root}/audio/2-100648-A-43.wav",
        "classID": 43,
        "class_string": "car_horn",
        "fold": 2,
        "duration": 5.0,
    }

    hparams = _hparams(
        esc50_sample_dir, tmp_path / "manifest", tmp_path / "save", signal_length_s=5
    )
    datasets, encoder = dataio_prep(hparams)
    assert encoder.decode_ndim(range(len(encoder))) == ["dog", "thunderstorm", "car_horn"]
    item = _items(datasets["valid"])["4-156993-A-19"]
    assert item["sig"].shape == (16000 * 5,) and item["sig"].dtype == torch.float32
    assert torch.isfinite(item["sig"]).all()
    assert item["sig"].abs().max() == pytest.approx(1.0)
    assert item["class_string"] == "thunderstorm"
    assert item["class_string_encoded"].dtype == torch.long
    assert item["class_string_encoded"].tolist() == [1]
    assert (tmp_path / "save" / "label_encoder.txt").is_file()


# ---- manifests ----------------------------------------------------------------------------


def test_moved_dataset_still_loads(tmp_path):
    data = _write_dataset(tmp_path / "data", _default_clips())
    _prepare(data, tmp_path / "manifest")
    moved = tmp_path / "moved"
    data.rename(moved)
    datasets, _ = dataio_prep(_hparams(moved, tmp_path / "manifest", tmp_path / "save"))
    assert len(datasets["train"]) == 3
    assert all(torch.isfinite(item["sig"]).all() for item in datasets["train"])


def test_corrupt_and_empty_wavs_are_skipped_and_counted(tmp_path, caplog):
    clips = _default_clips() + [
        _clip(1, 2, "pig", audio=os.urandom(2000)),  # random bytes
        _clip(2, 2, "pig", audio=b""),  # zero bytes
        _clip(3, 2, "pig", audio=np.zeros(0, dtype="float32")),  # valid header, no samples
    ]
    data = _write_dataset(tmp_path / "data", clips)
    with caplog.at_level(logging.WARNING):
        manifests = _prepare(data, tmp_path / "manifest")
    assert sorted(manifests["train"]) == ["1-103-A-3", "2-101-A-1", "3-103-B-3"]
    for bad in clips[5:]:
        assert bad["filename"] in caplog.text
    assert "Skipped 3 unreadable clip(s)" in caplog.text


def test_a_float_clip_without_a_finite_sample_is_skipped_and_counted(tmp_path, caplog):
    """Found by a probe: an all-NaN float wav passed the manifest (its header is fine) and
    stopped training part-way through epoch 1 with a dataloader traceback. Now it is skipped
    and counted like an unreadable clip; one with a few NaN samples stays (read as 0, with a
    warning, when it is loaded)."""
    clips = _default_clips() + [_clip(1, 2, "pig"), _clip(2, 2, "pig")]
    data = _write_dataset(tmp_path / "data", clips)
    all_nan = np.full(RATE, np.nan, dtype="float32")
    some_nan = _sine(1.0)
    some_nan[:10] = np.nan
    sf.write(data / "audio" / clips[5]["filename"], all_nan, RATE, subtype="FLOAT")
    sf.write(data / "audio" / clips[6]["filename"], some_nan, RATE, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        manifests = _prepare(data, tmp_path / "manifest")
    assert sorted(manifests["train"]) == ["1-103-A-3", "2-101-A-1", "2-102-A-2", "3-103-B-3"]
    assert f"{clips[5]['filename']}: no finite sample (all {RATE} sample values are NaN or infinite)" in caplog.text
    assert "Skipped 1 unreadable clip(s)" in caplog.text


def test_skip_manifest_creation_keeps_existing_files(tmp_path, caplog):
    data = _write_dataset(tmp_path / "data", _default_clips())
    paths = _manifests(tmp_path / "manifest")
    paths["train"].parent.mkdir()
    for path in paths.values():
        path.write_text("{}")
    with caplog.at_level(logging.INFO):
        _prepare(data, tmp_path / "manifest", skip_manifest_creation=True)
    assert all(path.read_text() == "{}" for path in paths.values())
    assert "skip_manifest_creation" in caplog.text
    paths["test"].unlink()  # one missing: all are written
    manifests = _prepare(data, tmp_path / "manifest", skip_manifest_creation=True)
    assert len(manifests["train"]) == 3 and len(manifests["test"]) == 1


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"valid_fold_nums": [3]}, "train_fold_nums"),  # overlaps train
        ({"test_fold_nums": 6}, "test_fold_nums"),
        ({"train_fold_nums": ["1", 2]}, "train_fold_nums"),
        ({"valid_fold_nums": "4"}, "valid_fold_nums"),
        ({"valid_fold_nums": []}, "valid_fold_nums"),
        ({"test_fold_nums": [True]}, "test_fold_nums"),
    ],
)
def test_bad_folds_raise_and_keep_manifests(tmp_path, kwargs, argument):
    data = _write_dataset(tmp_path / "data", _default_clips())
    before = _prepare(data, tmp_path / "manifest")
    with pytest.raises(ValueError, match=argument):
        _prepare(data, tmp_path / "manifest", **kwargs)
    assert {
        split: json.loads(path.read_text())
        for split, path in _manifests(tmp_path / "manifest").items()
    } == before


def test_manifests_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    data = _write_dataset(tmp_path / "data", _default_clips())
    before = _prepare(data, tmp_path / "manifest")
    assert sorted(p.name for p in (tmp_path / "manifest").iterdir()) == [
        "test.json",
        "train.json",
        "valid.json",
    ]  # no temporary file left behind

    (data / "audio" / _default_clips()[0]["filename"]).unlink()  # the rerun drops a clip
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.fspath(dst).endswith("valid.json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _prepare(data, tmp_path / "manifest")
    monkeypatch.undo()
    after = {
        split: json.loads(path.read_text())
        for split, path in _manifests(tmp_path / "manifest").items()
    }
    assert len(after["train"]) == len(before["train"]) - 1  # written before the failure
    assert after["valid"] == before["valid"] and after["test"] == before["test"]
    assert sorted(p.name for p in (tmp_path / "manifest").iterdir()) == [
        "test.json",
        "train.json",
        "valid.json",
    ]


def test_check_folds_accepts_int_and_lists():
    assert check_folds("train_fold_nums", 2) == [2]
    assert check_folds("train_fold_nums", [2, 1]) == [1, 2]
    with pytest.raises(ValueError, match="repeated"):
        check_folds("train_fold_nums", [1, 1])


def test_csv_missing_column(tmp_path):
    columns = [column for column in CSV_COLUMNS if column != "target"]
    data = _write_dataset(tmp_path / "data", _default_clips(), columns=columns)
    with pytest.raises(ValueError, match=r"\['target'\]"):
        _prepare(data, tmp_path / "manifest")


def test_empty_audio_folder_raises_and_keeps_manifest(tmp_path):
    data = _write_dataset(tmp_path / "data", _default_clips())
    before = _prepare(data, tmp_path / "manifest")
    shutil.rmtree(data / "audio")
    (data / "audio").mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav file"):
        _prepare(data, tmp_path / "manifest")
    assert json.loads((tmp_path / "manifest" / "train.json").read_text()) == before["train"]


def test_split_without_readable_clip_raises_and_keeps_manifest(tmp_path):
    clips = _default_clips()
    data = _write_dataset(tmp_path / "data", clips)
    before = _prepare(data, tmp_path / "manifest")
    (data / "audio" / clips[4]["filename"]).write_bytes(b"not audio")  # the only fold-5 clip
    with pytest.raises(ValueError, match=r"No readable clip for test \(folds \[5\]\)"):
        _prepare(data, tmp_path / "manifest")
    assert json.loads((tmp_path / "manifest" / "test.json").read_text()) == before["test"]


# ---- missing data, download -----------------------------------------------------------------


def test_missing_folder_offline_is_a_clear_error(tmp_path):
    missing = tmp_path / "ESC-50"
    with pytest.raises(RuntimeError) as err:
        _prepare(missing, tmp_path / "manifest", download_url=_closed_port_url())
    message = str(err.value)
    assert "meta/esc50.csv" in message and "make demo" in message
    assert "synthetic_prepare.py" in message
    assert not missing.exists() and not _leftovers(tmp_path)
    assert not (tmp_path / "manifest").exists()


def test_folder_without_csv_offline_is_a_clear_error(tmp_path):
    empty = tmp_path / "ESC-50"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="make demo"):
        _prepare(empty, tmp_path / "manifest", download_url=_closed_port_url())
    assert list(empty.iterdir()) == [] and not _leftovers(tmp_path)


def test_audio_without_csv_asks_for_the_csv(tmp_path):
    data = _write_dataset(tmp_path / "data", _default_clips())
    (data / "meta" / "esc50.csv").unlink()
    with pytest.raises(FileExistsError, match="meta/esc50.csv"):
        _prepare(data, tmp_path / "manifest", download_url=_closed_port_url())


def test_download_and_unpack_over_http(tmp_path, http_folder):
    served, base_url = http_folder
    source = _write_dataset(tmp_path / "source", _default_clips())
    _esc50_zip(served / "master.zip", source)
    target = tmp_path / "downloads" / "ESC-50"
    manifests = _prepare(target, tmp_path / "manifest", download_url=f"{base_url}/master.zip")
    assert (target / "meta" / "esc50.csv").is_file()
    assert sorted(p.name for p in (target / "audio").iterdir()) == sorted(
        p.name for p in (source / "audio").iterdir()
    )
    assert len(manifests["train"]) == 3 and len(manifests["valid"]) == 1
    assert not _leftovers(target.parent)


def test_download_from_local_zip_into_empty_folder(tmp_path):
    source = _write_dataset(tmp_path / "source", _default_clips())
    archive = _esc50_zip(tmp_path / "ESC-50-master.zip", source)
    target = tmp_path / "ESC-50"
    target.mkdir()
    manifests = _prepare(target, tmp_path / "manifest", download_url=archive.as_uri())
    assert len(manifests["test"]) == 1 and (target / "audio").is_dir()


def test_incomplete_archive_leaves_nothing(tmp_path, http_folder):
    served, base_url = http_folder
    source = _write_dataset(tmp_path / "source", _default_clips())
    _esc50_zip(served / "master.zip", source, skip=("meta",))
    target = tmp_path / "ESC-50"
    with pytest.raises(RuntimeError, match="lacks"):
        _prepare(target, tmp_path / "manifest", download_url=f"{base_url}/master.zip")
    assert not target.exists() and not _leftovers(tmp_path)


# ---- audio pipeline ---------------------------------------------------------------------------


def _one_item(tmp_path, audio, rate=RATE, signal_length_s=1.0, sample_rate=RATE):
    clips = _default_clips()
    clips[0] = _clip(1, 3, "cow", audio=audio, rate=rate)
    data = _write_dataset(tmp_path / "data", clips)
    _prepare(data, tmp_path / "manifest")
    hparams = _hparams(
        data,
        tmp_path / "manifest",
        tmp_path / "save",
        sample_rate=sample_rate,
        signal_length_s=signal_length_s,
    )
    datasets, _ = dataio_prep(hparams)
    return _items(datasets["train"])["1-103-A-3"]["sig"]


def test_silent_clip_stays_zeros(tmp_path):
    sig = _one_item(tmp_path, np.zeros(RATE, dtype="float32"))
    assert sig.shape == (RATE,) and torch.equal(sig, torch.zeros(RATE))


def test_stereo_22k_is_mono_and_resampled(tmp_path):
    rate = 22050
    t = np.arange(rate) / rate  # 1 s
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1000 * t)], axis=1)
    sig = _one_item(tmp_path, (0.4 * stereo).astype("float32"), rate=rate, signal_length_s=2.0)
    assert sig.shape == (2 * RATE,)
    assert sig[RATE - 200 : RATE].abs().max() > 0.1  # 1 s of audio at 16 kHz ...
    assert torch.equal(sig[RATE + 50 :], torch.zeros(RATE - 50))  # ... then padding
    spectrum = torch.fft.rfft(sig[:RATE]).abs()  # 1 Hz bins
    assert spectrum[440] > 0.8 * spectrum[1000] and spectrum[1000] > 0.8 * spectrum[440]
    assert spectrum[440] > 100 * spectrum[700]  # both channels, nothing else


@pytest.mark.parametrize("seconds", [3.0, 7.0])
def test_short_and_long_clips_match_signal_length(tmp_path, seconds):
    ramp = np.linspace(0.1, 0.5, int(seconds * RATE)).astype("float32")
    sig = _one_item(tmp_path, ramp, signal_length_s=5)
    assert sig.shape == (5 * RATE,) and torch.isfinite(sig).all()
    if seconds < 5:
        assert torch.equal(sig[3 * RATE :], torch.zeros(2 * RATE))
        assert sig[3 * RATE - 1] == pytest.approx(1.0)
    else:  # cropped to the first 5 s, then peak-normalised
        expected = torch.from_numpy(ramp[: 5 * RATE]) / float(ramp[5 * RATE - 1])
        assert torch.allclose(sig, expected, atol=2e-4)  # 16-bit wav


def test_clips_longer_than_signal_length_are_counted_in_a_warning(tmp_path, caplog):
    """Only a clip's first signal_length_s seconds are read: the clips that lose their end
    are counted per split, with the length that reads them whole."""
    clips = _default_clips()
    clips[0] = _clip(1, 3, "cow", audio=_sine(2.5))  # train, 2.5 s
    clips[2] = _clip(3, 3, "cow", "B", audio=_sine(1.75))  # train, 1.75 s
    data = _write_dataset(tmp_path / "data", clips)
    _prepare(data, tmp_path / "manifest")
    for length, expected in ((1.0, "2 of the 3 train clips"), (2.0, "1 of the 3 train clips")):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            dataio_prep(_hparams(data, tmp_path / "manifest", tmp_path / "save", signal_length_s=length))
        warnings = [r.getMessage() for r in caplog.records if "longer than signal_length_s" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].startswith(expected), warnings  # valid / test: 1 s
        assert "(up to 2.5 s)" in warnings[0] and "--signal_length_s 2.5" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dataio_prep(_hparams(data, tmp_path / "manifest", tmp_path / "save", signal_length_s=2.5))
    assert "longer than" not in caplog.text


def test_label_encoder_is_reused_and_checked(tmp_path):
    data = _write_dataset(tmp_path / "data", _default_clips())
    _prepare(data, tmp_path / "manifest")
    hparams = _hparams(data, tmp_path / "manifest", tmp_path / "save")
    _, encoder = dataio_prep(hparams)
    assert encoder.decode_ndim([0, 1]) == ["rooster", "cow"]  # sorted by target: 1, 3
    saved = tmp_path / "save" / "label_encoder.txt"
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary file
    saved.write_text(saved.read_text().replace("'cow'", "'sheep'"))
    with pytest.raises(ValueError, match=r"lacks the classes \['cow'\]"):
        dataio_prep(hparams)
    clips = _default_clips() + [_clip(1, 0, "dog", take="C")]
    data = _write_dataset(tmp_path / "data", clips)
    _prepare(data, tmp_path / "manifest")
    saved.unlink()
    _, encoder = dataio_prep(hparams)
    assert encoder.decode_ndim([0, 1, 2]) == ["dog", "rooster", "cow"]
    _, reloaded = dataio_prep(hparams)
    assert reloaded.lab2ind == encoder.lab2ind


def test_dataio_prep_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare_esc50"):
        dataio_prep(_hparams(tmp_path, tmp_path / "nothing", tmp_path / "save"))


def test_dataio_prep_with_an_empty_manifest_names_it(tmp_path):
    """SpeechBrain's loader fails on `{}` with an IndexError; the user gets the file and the fix."""
    data = _write_dataset(tmp_path / "data", _default_clips())
    _prepare(data, tmp_path / "manifest")
    hparams = _hparams(data, tmp_path / "manifest", tmp_path / "save")
    with open(hparams["valid_annotation"], "w") as fout:
        fout.write("{}")
    with pytest.raises(ValueError, match=r"valid_annotation .*valid\.json lists no clip.*skip_manifest_creation"):
        dataio_prep(hparams)


# ---- mutation audit, second pass: what the tests above let through ------------------------------


def test_an_audio_data_folder_of_its_own_is_read(tmp_path):
    """Catches `audio_data_folder` ignored (always <data_folder>/audio): the clips in
    <data_folder>/wavs are read from there and the manifests say {data_root}/wavs/."""
    data = _write_dataset(tmp_path / "data", _default_clips())
    (data / "audio").rename(data / "wavs")
    paths = _manifests(tmp_path / "manifest")
    prepare_esc50(data, data / "wavs", paths["train"], paths["valid"], paths["test"])
    train = json.loads(paths["train"].read_text())
    assert train["2-101-A-1"]["wav"] == "{data_root}/wavs/2-101-A-1.wav"
    assert sorted(train) == ["1-103-A-3", "2-101-A-1", "3-103-B-3"]


def test_a_missing_audio_folder_is_named_with_the_fix(tmp_path):
    """Catches the `audio_folder.is_dir()` check dropped: the csv is there but audio/ is not;
    the error names the folder and audio_data_folder, not a bare `iterdir` errno."""
    data = _write_dataset(tmp_path / "data", _default_clips())
    shutil.rmtree(data / "audio")
    with pytest.raises(FileNotFoundError, match=r"audio folder .*audio does not exist.*audio_data_folder"):
        _prepare(data, tmp_path / "manifest")


def test_upper_case_extensions_and_other_files_in_the_audio_folder_are_fine(tmp_path):
    """Catches `.lower()` dropped from the audio-folder check (a folder of .WAV files refused
    as holding no .wav file) and `any` -> `all` (a notes file beside the clips refused)."""
    clips = _default_clips()
    for clip in clips:
        clip["filename"] = clip["filename"].replace(".wav", ".WAV")
    data = _write_dataset(tmp_path / "data", clips)
    (data / "audio" / "notes.txt").write_text("not a clip")
    manifests = _prepare(data, tmp_path / "manifest")
    assert sorted(manifests["train"]) == ["1-103-A-3", "2-101-A-1", "3-103-B-3"]
    assert manifests["test"]["5-103-A-3"]["wav"] == "{data_root}/audio/5-103-A-3.WAV"


def test_a_row_of_an_unused_fold_does_not_end_the_csv(tmp_path):
    """Catches `continue` -> `break` on a row whose fold is in no split: the csv's first row
    is of fold 5 (unused with train 1, 2 / valid 3 / test 4); the rows after it still count."""
    clips = _default_clips()
    data = _write_dataset(tmp_path / "data", clips[4:] + clips[:4])
    manifests = _prepare(
        data, tmp_path / "manifest", train_fold_nums=[1, 2], valid_fold_nums=[3], test_fold_nums=[4]
    )
    assert {split: sorted(entries) for split, entries in manifests.items()} == {
        "train": ["1-103-A-3", "2-101-A-1"],
        "valid": ["3-103-B-3"],
        "test": ["4-101-A-1"],
    }


def test_braces_in_file_names_and_categories_survive_the_manifest(tmp_path):
    """Catches `_escape_braces` dropped on "wav" or on "class_string": SpeechBrain formats every
    string of a manifest entry with `format_map`, so an unescaped `{x}` is a KeyError when the
    dataset is read. A clip named 1-{x}-A-3.wav of category "cow {big}" reads as itself."""
    clips = _default_clips()
    for clip in clips:
        if clip["category"] == "cow":
            clip["category"] = "cow {big}"
    clips[0]["filename"] = "1-{x}-A-3.wav"
    data = _write_dataset(tmp_path / "data", clips)
    _prepare(data, tmp_path / "manifest")
    datasets, encoder = dataio_prep(_hparams(data, tmp_path / "manifest", tmp_path / "save"))
    item = _items(datasets["train"])["1-{x}-A-3"]
    assert item["class_string"] == "cow {big}" and torch.isfinite(item["sig"]).all()
    assert encoder.decode_ndim([0, 1]) == ["rooster", "cow {big}"]


def test_true_is_not_fold_one():
    """Catches the bool exclusion dropped from `_is_int`: True == 1, so `test_fold_nums: True`
    (or [True]) would silently be fold 1."""
    for value in (True, [True], [False, 2]):
        with pytest.raises(ValueError, match="folds are integers in 1..5"):
            check_folds("test_fold_nums", value)


def test_a_csv_header_with_spaces_after_the_commas_is_read(tmp_path):
    """Catches `.strip()` dropped from the header's column names (the rows' keys are stripped):
    "filename, fold, target, ..." (a hand-edited csv) has every needed column."""
    data = _write_dataset(tmp_path / "data", _default_clips())
    csv_path = data / "meta" / "esc50.csv"
    header, *rows = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text(header.replace(",", ", ") + "".join(rows))
    manifests = _prepare(data, tmp_path / "manifest")
    assert manifests["valid"]["4-101-A-1"]["classID"] == 1
    assert manifests["valid"]["4-101-A-1"]["fold"] == 4


def test_the_manifest_duration_keeps_four_decimals(tmp_path):
    """Catches a coarser rounding of the duration: 8007 frames at 16 kHz last
    8007 / 16000 = 0.5004375 s, 0.5004 with 4 decimals (by hand)."""
    clips = _default_clips()
    clips[4] = _clip(5, 3, "cow", audio=_sine(8007 / RATE))
    data = _write_dataset(tmp_path / "data", clips)
    assert sf.info(str(data / "audio" / clips[4]["filename"])).frames == 8007
    manifests = _prepare(data, tmp_path / "manifest")
    assert manifests["test"]["5-103-A-3"]["duration"] == 0.5004


def test_an_audio_folder_that_holds_the_data_folder_is_written_absolute(tmp_path):
    """Catches `relative == os.pardir` dropped in `_manifest_prefix`: the audio folder is the
    data folder's parent (relpath ".."), outside it, so absolute, not {data_root}/../."""
    assert _manifest_prefix(tmp_path / "data", tmp_path) == f"{tmp_path}/"


def test_a_meta_folder_without_the_csv_is_refused_before_downloading(tmp_path):
    """Catches "meta" dropped from download_esc50's check of a half-filled folder: a data
    folder holding meta/ (no esc50.csv) and no audio/ is refused at once (FileExistsError
    naming meta), not downloaded into (here: an offline URL would be a RuntimeError)."""
    data = tmp_path / "ESC-50"
    (data / "meta").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"\['meta'\] but no meta/esc50.csv"):
        _prepare(data, tmp_path / "manifest", download_url=_closed_port_url())


def test_the_download_is_staged_beside_the_data_folder(tmp_path, monkeypatch):
    """Catches the staging folder made in the system's temporary folder instead of beside the
    data folder (the docstring: the complete content is then moved by renames on one file
    system): with the system's temporary folder missing, the download still works."""
    source = _write_dataset(tmp_path / "source", _default_clips())
    archive = _esc50_zip(tmp_path / "ESC-50-master.zip", source)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    target = tmp_path / "ESC-50"
    manifests = _prepare(target, tmp_path / "manifest", download_url=str(archive))
    assert len(manifests["train"]) == 3 and not _leftovers(tmp_path)


def test_an_archive_without_its_top_folder_is_unpacked(tmp_path):
    """Catches the fallback to the archive's root dropped: a zip holding audio/ and meta/ at
    its root (no ESC-50-master/ folder, e.g. zipped again by hand) is unpacked all the same."""
    source = _write_dataset(tmp_path / "source", _default_clips())
    archive = tmp_path / "esc50.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(source).as_posix())
    target = tmp_path / "ESC-50"
    manifests = _prepare(target, tmp_path / "manifest", download_url=str(archive))
    assert len(manifests["train"]) == 3 and (target / "meta" / "esc50.csv").is_file()


def test_a_move_into_a_used_folder_that_fails_leaves_no_csv(tmp_path, monkeypatch):
    """Catches the csv's folder (meta/, the last of `required`) not moved last into a data
    folder that holds other files: when moving audio/ fails, meta/esc50.csv must not be in
    place, else the rerun takes the data for complete and finds no audio/. The rerun
    downloads again and works."""
    source = _write_dataset(tmp_path / "source", _default_clips())
    archive = _esc50_zip(tmp_path / "ESC-50-master.zip", source)
    target = tmp_path / "ESC-50"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(os.fspath(src)) == "audio":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(RuntimeError, match="disk full"):
        _prepare(target, tmp_path / "manifest", download_url=str(archive))
    monkeypatch.undo()
    assert sorted(path.name for path in target.iterdir()) == ["notes.txt"]
    manifests = _prepare(target, tmp_path / "manifest", download_url=str(archive))
    assert len(manifests["train"]) == 3 and not _leftovers(tmp_path)


def test_an_archive_entry_named_like_a_users_file_moves_nothing(tmp_path):
    """Catches the clash check dropped in `_move_into_place`: ESC-50's archive holds a
    README.md beside audio/ and meta/; a data folder with the user's own README.md is refused
    (naming it), the user's file is kept and nothing of the archive is moved in."""
    source = _write_dataset(tmp_path / "source", _default_clips())
    (source / "README.md").write_text("ESC-50's readme")
    archive = _esc50_zip(tmp_path / "ESC-50-master.zip", source)
    target = tmp_path / "ESC-50"
    target.mkdir()
    (target / "README.md").write_text("mine")
    with pytest.raises(RuntimeError, match=r"already has \['README.md'\]"):
        _prepare(target, tmp_path / "manifest", download_url=str(archive))
    assert (target / "README.md").read_text() == "mine"
    assert sorted(path.name for path in target.iterdir()) == ["README.md"]
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"signal_length_s": 0}, r"signal_length_s=0 must be a positive float"),
        ({"sample_rate": 0}, r"sample_rate=0 must be a positive int"),
        ({"sample_rate": 16000.5}, r"sample_rate=16000.5 must be a positive int"),
        ({"sample_rate": None}, r"dataio_prep needs hparams \['sample_rate'\]"),
    ],
)
def test_dataio_prep_refuses_a_bad_or_missing_number(tmp_path, change, message):
    """Catches `value > 0` -> `>= 0` (0 samples per clip), the whole-number check of
    sample_rate dropped (16000.5 cut to 16000), and the missing-keys check dropped (a bare
    KeyError): each is a ValueError naming the key, before any manifest is read."""
    hparams = _hparams(tmp_path, tmp_path / "nothing", tmp_path / "save")
    hparams.update(change)
    hparams = {key: value for key, value in hparams.items() if value is not None}
    with pytest.raises(ValueError, match=message):
        dataio_prep(hparams)


def test_the_long_clip_warning_has_a_millisecond_tolerance(caplog):
    """Catches a wider tolerance than 1e-3 s in `warn_long_clips` (a clip 10 ms too long for
    signal_length_s = 1 would lose its end unsaid) and an entry without a duration counted as
    long (the docstring: it counts as short). Of 1.0005 s, 1.01 s and none: 1 of 3 warned."""
    entries = {"a": {"duration": 1.0005}, "b": {"duration": 1.01}, "c": {}}
    with caplog.at_level(logging.WARNING):
        warn_long_clips({"train": types.SimpleNamespace(data=entries)}, 1.0)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("1 of the 3 train clips"), warnings
    assert "(up to 1.01 s)" in warnings[0]


def test_one_category_under_two_targets_is_refused(tmp_path):
    """Catches the category -> target half of `_classes_by_id`'s one-to-one check dropped:
    "dog" as target 0 (fold 1) and target 5 (fold 2) is a ValueError naming the clip and both
    ids (SpeechBrain's encoder would otherwise fail on a repeated label with a bare KeyError)."""
    clips = _default_clips() + [_clip(1, 0, "dog", take="C"), _clip(2, 5, "dog", take="C")]
    data = _write_dataset(tmp_path / "data", clips)
    _prepare(data, tmp_path / "manifest")
    with pytest.raises(ValueError, match=r"clip 2-105-C-5 has target 5 / category 'dog'.*'dog' is target 0 elsewhere"):
        dataio_prep(_hparams(data, tmp_path / "manifest", tmp_path / "save"))
