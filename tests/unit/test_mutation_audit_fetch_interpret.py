"""Tests added by a mutation audit of the real-recordings fetcher (data_prep/fetch_debian_sounds.py)
and of the output bookkeeping of `audio-interpret` (recipes/interpret_files.py): each one fails
under a small, plausible change of the code that the other unit tests let through (named D<k> in
each docstring), and its expected value is worked out by hand, not read from the code under test.

Nothing is downloaded: `apt-get download` is a stand-in that writes empty .deb files, the
packages a real .deb (`dpkg-deb --build`) or a stand-in of `read_members`; the interpreter of
`audio-interpret` is a hand-made stand-in (no trained model) and its figure is not drawn.
"""

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_mutation_audit_commands import (
    HandMadeInterpreter,
    _audio,
    _fake_save_interpretation,
    _main,
)

from data_prep import fetch_debian_sounds
from data_prep.fetch_debian_sounds import (
    BACKGROUNDS,
    INSTRUMENT_TARGETS,
    SOURCES,
    TARGETS,
    FetchError,
    Source,
    build_dev_set,
    download_packages,
    read_members,
    set_sources,
)
from recipes import interpret_files
from recipes.interpret_files import plan_outputs

# ---------------------------------------------------------------- the fetcher's table

#: The animal each target recording's file (in its package) is of, read off the names by hand:
#: a hen is a chicken, a drake a duck, a lamb a sheep, "LRBark" a dog's bark.
ANIMAL_OF_FILE = {
    "cat.ogg": "cat",
    "chickens.ogg": "chicken",
    "hen.ogg": "chicken",
    "cow.ogg": "cow",
    "cow_white.ogg": "cow",
    "dog.ogg": "dog",
    "LRBark_1_LA_cut.ogg": "dog",
    "LRBark_3_LA_cut.ogg": "dog",
    "donkey.ogg": "donkey",
    "duck.ogg": "duck",
    "drake.ogg": "duck",
    "horse.ogg": "horse",
    "owl.ogg": "owl",
    "pig.ogg": "pig",
    "sheep.ogg": "sheep",
    "sheep_lamb.ogg": "sheep",
}
PACKAGES = ("gcompris-qt-data", "tuxpaint-stamps-default", "asterisk-moh-opsound-wav", "asterisk-core-sounds-en-wav")


def _file_name(source):
    """The recording's own name: the entry's in a Qt resource archive, else the member's."""
    return os.path.basename(source.entry or source.member)


def test_each_target_is_filed_under_the_animal_it_records():
    """10 classes (the module's docstring), each recording in the folder of its animal, named
    `<source>_...` after its package. Catches D2 (the lamb filed under pig)."""
    classes = set()
    for source in TARGETS:
        _, animal, name = source.destination.split("/")
        assert ANIMAL_OF_FILE[_file_name(source)] == animal, source
        assert name.startswith({"gcompris-qt-data": "gcompris_", "tuxpaint-stamps-default": "tuxpaint_"}[source.package])
        classes.add(animal)
    assert classes == {"cat", "chicken", "cow", "dog", "donkey", "duck", "horse", "owl", "pig", "sheep"}


@pytest.mark.parametrize("sources", [SOURCES, set_sources("instruments")], ids=["animals", "instruments"])
def test_no_recording_is_taken_twice(sources):
    """Two destinations from one recording would put the same audio in the set twice.
    Catches D3 (gcompris_bark_3 cut from LRBark_1, as gcompris_bark_1 is)."""
    taken = [(source.package, source.member, source.entry) for source in sources]
    assert len(set(taken)) == len(taken)
    destinations = [source.destination for source in sources]
    assert len(set(destinations)) == len(destinations)


@pytest.mark.parametrize("sources", [SOURCES, set_sources("instruments")], ids=["animals", "instruments"])
def test_a_gcompris_entry_lies_in_the_resources_of_its_archives_activity(sources):
    """A GCompris rcc `usr/share/gcompris-qt/rcc/<activity>.rcc` holds the files of
    `gcompris/src/activities/<activity>/resource/...`. Catches D4 (the entry without its folder)."""
    gcompris = [source for source in sources if source.entry]
    assert gcompris and all(source.package == "gcompris-qt-data" for source in gcompris)
    for source in gcompris:
        activity = Path(source.member).stem
        assert source.member == f"usr/share/gcompris-qt/rcc/{activity}.rcc"
        assert source.entry.startswith(f"gcompris/src/activities/{activity}/resource/"), source


def test_a_recording_keeps_its_formats_suffix():
    """The files are the packages' own bytes: a wav is written as .wav, an Ogg as .ogg.
    Catches D5 (the cold_day wav written as .ogg)."""
    for source in TARGETS + BACKGROUNDS:
        assert Path(source.destination).suffix == Path(_file_name(source)).suffix, source
        assert Path(source.destination).suffix in (".wav", ".ogg")


def copyright_files(packages):
    """The Sources of DIR/licenses/<package>.copyright, from usr/share/doc/<package>/copyright."""
    return {Source(f"licenses/{p}.copyright", p, f"usr/share/doc/{p}/copyright") for p in packages}


def test_every_package_used_has_its_copyright_file_copied():
    """DIR/licenses/<package>.copyright from usr/share/doc/<package>/copyright, for the four
    packages (hand-listed), and the recordings come from those four only.
    Catches D6 (no license of the spoken prompts), D7 (the changelog copied instead)."""
    licenses = {source for source in SOURCES if source.destination.startswith("licenses/")}
    assert licenses == copyright_files(PACKAGES)
    assert {source.package for source in TARGETS + BACKGROUNDS} == set(PACKAGES)
    assert len(SOURCES) == len(TARGETS) + len(BACKGROUNDS) + 4


#: GCompris' activity "instruments" (its resource folder, listed by hand from the package's
#: instruments.rcc): the ten classes of the second set, one recording each.
INSTRUMENTS = ("accordion", "bongo", "cello", "clarinet", "drum_kit", "harmonica", "piano", "saxophone",
               "triangle", "violin")


def test_the_instruments_set_is_ten_gcompris_instruments_over_the_same_backgrounds():
    """`--set instruments`: DIR/instruments/<name>/gcompris_<name>.ogg from GCompris'
    instruments.rcc, the animals' backgrounds, and the licenses of the three packages those
    come from (not Tux Paint's, which gives none of them)."""
    expected = {
        Source(
            f"instruments/{name}/gcompris_{name}.ogg",
            "gcompris-qt-data",
            "usr/share/gcompris-qt/rcc/instruments.rcc",
            f"gcompris/src/activities/instruments/resource/{name}.ogg",
        )
        for name in INSTRUMENTS
    }
    assert set(INSTRUMENT_TARGETS) == expected and len(INSTRUMENT_TARGETS) == 10
    sources = set_sources("instruments")
    assert sources[: len(INSTRUMENT_TARGETS) + len(BACKGROUNDS)] == INSTRUMENT_TARGETS + BACKGROUNDS
    licenses = set(sources[len(INSTRUMENT_TARGETS) + len(BACKGROUNDS) :])
    packages = ("gcompris-qt-data", "asterisk-moh-opsound-wav", "asterisk-core-sounds-en-wav")
    assert licenses == copyright_files(packages)


# ---------------------------------------------------------------- apt-get and dpkg-deb


def test_a_missing_dpkg_deb_is_named_before_any_download(tmp_path, monkeypatch):
    """apt-get there, dpkg-deb not: the error names dpkg-deb, nothing is downloaded.
    Catches D8 (only apt-get looked for)."""
    monkeypatch.setattr(fetch_debian_sounds.shutil, "which", lambda tool: None if tool == "dpkg-deb" else f"/usr/bin/{tool}")

    def download(*args, **kwargs):
        raise AssertionError("downloaded")

    monkeypatch.setattr(fetch_debian_sounds, "download_packages", download)
    with pytest.raises(FetchError, match="^dpkg-deb is not available"):
        fetch_debian_sounds.fetch_debian_sounds(tmp_path / "dev", [Source("targets/a/a.wav", "pkg", "usr/a.wav")])


def test_a_failed_apt_get_shows_its_last_five_errors_not_its_warnings(tmp_path, monkeypatch):
    """stderr: a warning, errors E1..E7, a warning: the message shows E3..E7 (the last five
    errors), no warning and not E1, E2. Catches D9 (the warnings kept instead of the errors),
    D10 (the first five errors)."""
    stderr = "\n".join(["W: warned first", *(f"E: error {k}" for k in range(1, 8)), "W: warned last"])
    monkeypatch.setattr(
        fetch_debian_sounds.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(command, 100, "", stderr)
    )
    with pytest.raises(FetchError) as caught:
        download_packages(["pkg"], tmp_path)
    message = str(caught.value)
    assert "(exit 100):\nE: error 3\nE: error 4\nE: error 5\nE: error 6\nE: error 7\nIf it is offline" in message
    assert "W:" not in message and "error 1" not in message and "error 2" not in message


def test_apt_get_downloads_into_the_folder_and_each_package_maps_to_its_deb(tmp_path, monkeypatch):
    """The stand-in of apt-get writes `<package>_1.0_all.deb` where it runs: the answer maps
    each package to its file; a package it left no .deb of is an error.
    Catches D11 (apt-get run in the working folder, not `folder`), D13 (the check inverted)."""

    def apt_get(command, cwd=None, **kwargs):
        assert command[:2] == ["apt-get", "download"] and cwd is not None
        for package in command[2:]:
            if package != "lost":
                (Path(cwd) / f"{package}_1.0_all.deb").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch_debian_sounds.subprocess, "run", apt_get)
    folder = tmp_path / "debs"
    folder.mkdir()
    assert download_packages(["pkg-a", "pkg-b"], folder) == {
        "pkg-a": folder / "pkg-a_1.0_all.deb",
        "pkg-b": folder / "pkg-b_1.0_all.deb",
    }
    with pytest.raises(FetchError, match="apt-get download lost left no lost_\\*.deb"):
        download_packages(["lost"], folder)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_a_member_that_is_a_symlink_is_reported_as_missing(tmp_path):
    """A package whose wanted member became a symbolic link: the layout changed, said by name.
    Catches D15 (a non-file member read: the link is a tar error, "could not unpack")."""
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: fake-link\nVersion: 1.0\nArchitecture: all\nMaintainer: Test <test@example.org>\nDescription: test\n"
    )
    (tree / "usr/share/fake").mkdir(parents=True)
    (tree / "usr/share/fake/real.wav").write_bytes(b"RIFF")
    (tree / "usr/share/fake/link.wav").symlink_to("real.wav")
    deb = tmp_path / "fake-link_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    assert read_members(deb, {"usr/share/fake/real.wav"}) == {"usr/share/fake/real.wav": b"RIFF"}
    with pytest.raises(FetchError, match=r"has no usr/share/fake/link\.wav: the package's layout changed"):
        read_members(deb, {"usr/share/fake/link.wav"})


def _wav(seconds=0.5, rate=8000):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * rate)), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_only_the_packages_of_the_missing_files_are_downloaded(tmp_path, monkeypatch):
    """a.wav (package pkg-a) is there, b.wav (pkg-b) is not: only pkg-b is downloaded, and
    a.wav is left as it was. Catches D21 (every package downloaded again)."""
    sources = [Source("targets/a/a.wav", "pkg-a", "usr/a.wav"), Source("targets/b/b.wav", "pkg-b", "usr/b.wav")]
    out = tmp_path / "dev"
    (out / "targets" / "a").mkdir(parents=True)
    (out / "targets" / "a" / "a.wav").write_bytes(b"mine")
    downloaded = []

    def download(packages, folder):
        downloaded.append(list(packages))
        return {package: Path(folder) / f"{package}_1_all.deb" for package in packages}

    monkeypatch.setattr(fetch_debian_sounds, "_require_tools", lambda: None)
    monkeypatch.setattr(fetch_debian_sounds, "download_packages", download)
    monkeypatch.setattr(fetch_debian_sounds, "read_members", lambda deb, members: {m: _wav() for m in members})
    assert fetch_debian_sounds.fetch_debian_sounds(out, sources) == [sources[1]]
    assert downloaded == [["pkg-b"]]
    assert (out / "targets" / "a" / "a.wav").read_bytes() == b"mine"
    assert sf.info(str(out / "targets" / "b" / "b.wav")).duration == pytest.approx(0.5)


# ---------------------------------------------------------------- --build and the command


#: hparams/demo.yaml's sizes (its `dataset:` and `common: seed`), written out by hand.
DEMO_SIZES = {"per_class": 40, "duration_s": 3.0, "snr_db_range": (-5.0, 5.0), "sample_rate": 16000, "seed": 1234}


@pytest.fixture
def recorded_build(monkeypatch):
    """build_dev_set with the fetcher and create_collection_dataset recorded, not run."""
    calls = {"fetch": [], "create": []}
    monkeypatch.setattr(
        fetch_debian_sounds,
        "fetch_debian_sounds",
        lambda out_dir, sources: calls["fetch"].append((out_dir, sources)) or [1, 2],
    )
    monkeypatch.setattr(
        fetch_debian_sounds,
        "create_collection_dataset",
        lambda *args, **kwargs: calls["create"].append((args, kwargs)) or "ROOT",
    )
    return calls


def test_build_fetches_then_cuts_targets_and_backgrounds_at_the_demos_sizes(recorded_build, tmp_path):
    """The module's docstring: 40 clips per class of 3 s at 16 kHz, SNR -5..5 dB, seed 1234
    (hparams/demo.yaml's), from DIR/targets and DIR/backgrounds into DIR/dataset; an override
    replaces its one size. Catches D27 (overrides ignored), D28 (targets and backgrounds
    swapped), D29 (4 clips), D30 (SNR -5..0), D31 (no fetch first), D36 (seed 1243)."""
    out = tmp_path / "debian"
    assert build_dev_set(out) == "ROOT"
    assert build_dev_set(str(out), seed=7) == "ROOT"
    assert recorded_build["fetch"] == [(out, SOURCES), (out, SOURCES)]
    folders = (out / "targets", out / "backgrounds", out / "dataset")
    assert recorded_build["create"] == [(folders, DEMO_SIZES), (folders, {**DEMO_SIZES, "seed": 7})]


def test_the_instruments_set_is_fetched_and_cut_into_its_own_folder(recorded_build, tmp_path):
    """`--set instruments --build`: only the instruments set's files are fetched, and its dataset
    is cut from DIR/instruments over DIR/backgrounds into DIR/dataset_instruments at the demo's
    sizes, beside the animals' DIR/targets and DIR/dataset (which it leaves alone)."""
    out = tmp_path / "debian"
    fetch_debian_sounds.main(["--out", str(out), "--set", "instruments", "--build"])
    assert recorded_build["fetch"] == [(out, set_sources("instruments"))]
    folders = (out / "instruments", out / "backgrounds", out / "dataset_instruments")
    assert recorded_build["create"] == [(folders, DEMO_SIZES)]
    fetch_debian_sounds.main(["--out", str(out), "--set", "instruments"])
    assert recorded_build["fetch"][-1] == (str(out), set_sources("instruments"))
    assert len(recorded_build["create"]) == 1


def test_the_command_fetches_or_builds_as_asked(recorded_build, tmp_path, capsys):
    """Without --build: the recordings only, "2 files fetched into OUT" (the stand-in fetched
    two); with --build: the dataset. Catches D33 (--build inverted), D34 (the count of all
    the sources printed)."""
    fetch_debian_sounds.main(["--out", str(tmp_path)])
    assert capsys.readouterr().out.startswith(f"2 files fetched into {tmp_path} (")
    assert recorded_build["create"] == []
    fetch_debian_sounds.main(["--out", str(tmp_path), "--build"])
    assert capsys.readouterr().out.startswith("Development dataset at ROOT (")
    assert len(recorded_build["create"]) == 1


# ---------------------------------------------------------------- plan_outputs


def _planned_beside_users_files(tmp_path, clip_name, *users_files):
    """plan_outputs for one clip, tmp_path/clip_name, into tmp_path/out holding the user's
    own `users_files` (no earlier run wrote them): (clip, out, stems, notes)."""
    out = tmp_path / "out"
    out.mkdir()
    for name in users_files:
        (out / name).write_bytes(b"mine")
    clip = str(tmp_path / clip_name)
    _, stems, notes = plan_outputs([clip], str(out))
    return clip, out, stems, notes


def test_a_stem_with_regex_characters_still_sees_the_users_component_file(tmp_path):
    """`dog(1).wav` would write `dog(1)_component001.wav` (L2I), which the user has in `out`:
    its outputs become `dog(1)-2`. Catches D38 (the stem used as a regex unescaped:
    `dog(1)` matches `dog1`, and the user's file would be written over)."""
    clip, out, stems, notes = _planned_beside_users_files(tmp_path, "dog(1).wav", "dog(1)_component001.wav")
    assert stems == {clip: "dog(1)-2"}
    assert notes == [
        f"{clip}: its outputs are named dog(1)-2* in {out} ({out / 'dog(1)_component001.wav'} is already there "
        "and no earlier run wrote it, not overwritten)."
    ]


@pytest.mark.parametrize("entry", [{"class": "dog"}, {"files": ["a.png"]}])
def test_a_predictions_json_whose_entries_list_no_files_is_refused(tmp_path, entry):
    """Interpreter and method given, but an entry without its {kind: path} "files": not this
    command's, refused as such (a ValueError, not a crash). Catches D39 (entries unchecked)."""
    record = {"interpreter": "runs/piq/inference", "method": "PIQ", "files": {"a.wav": entry}}
    (tmp_path / "predictions.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="is not a predictions.json of audio-interpret"):
        plan_outputs([str(tmp_path / "in" / "a.wav")], str(tmp_path))


def test_a_file_given_twice_is_explained_once_under_its_first_spelling(tmp_path):
    """`c/dog.wav` then `c/./dog.wav` (the same file): kept once, as first given, with one note.
    Catches D41 (the last spelling kept), D42 (a note per time given)."""
    first, again = str(tmp_path / "c" / "dog.wav"), f"{tmp_path}/c/./dog.wav"  # pathlib would drop the "."
    unique, stems, notes = plan_outputs([first, again], str(tmp_path / "out"))
    assert unique == [first] and stems == {first: "dog"}
    assert notes == [f"{first} is given 2 times: explained once."]


def test_the_next_free_stem_counts_up_from_the_stem(tmp_path):
    """The user has `dog.png` and `dog-2_original.wav` in `out`: dog -> dog-2 (taken) ->
    dog-3. Catches D47 (counting on from the last candidate: dog-2-3)."""
    clip, out, stems, notes = _planned_beside_users_files(tmp_path, "dog.wav", "dog.png", "dog-2_original.wav")
    assert stems == {clip: "dog-3"}
    assert notes == [
        f"{clip}: its outputs are named dog-3* in {out} ({out / 'dog.png'} is already there and no earlier run "
        "wrote it, not overwritten)."
    ]


# ---------------------------------------------------------------- main's bookkeeping


class StandIn(HandMadeInterpreter):
    """Stands for AudioInterpreter: `HandMadeInterpreter`, with a file called bad.wav a
    ValueError (unreadable) and one warning for every other one."""

    method = "stand-in"

    def interpret_file(self, path):
        if os.path.basename(path) == "bad.wav" and os.path.isfile(path):
            raise ValueError(f"{path} is not audio")
        result = super().interpret_file(path)
        result["warnings"] = [f"{path}: 1 NaN sample"]
        return result


@pytest.fixture
def stand_in(monkeypatch):
    """interpret_files.main with StandIn (`components` set by the test)."""
    made = {"components": False}
    monkeypatch.setattr(
        interpret_files.AudioInterpreter, "from_hparams", classmethod(lambda cls, **kwargs: StandIn(made["components"]))
    )
    monkeypatch.setattr(interpret_files, "save_interpretation", _fake_save_interpretation)
    monkeypatch.setattr(interpret_files, "write_wav", lambda path, *_: Path(path).write_text("component"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return made


def _predictions(out):
    return json.loads((out / "predictions.json").read_text())


def test_an_entry_lists_the_three_files_and_the_warnings_of_a_method_without_components(stand_in, tmp_path):
    """PIQ-like result (no "components"): the entry's files are png, original, interpretation
    only, and the result's warnings are kept. Catches D52 ("components": [] for every method),
    D64 (the warnings dropped)."""
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _main([clip], out) == 0
    entry = _predictions(out)["files"][clip]
    assert entry["files"] == {
        "png": str(out / "a.png"),
        "original": str(out / "a_original.wav"),
        "interpretation": str(out / "a_interpretation.wav"),
    }
    assert entry["warnings"] == [f"{clip}: 1 NaN sample"]
    assert (entry["class"], entry["probability"]) == ("dog", 0.75)


def test_a_run_on_other_files_leaves_an_earlier_runs_outputs(stand_in, tmp_path):
    """a.wav, then b.wav in the same --out: a's three files and entry stay, "outputs" lists
    both runs' six files, the earlier entry first. Catches D53 (every earlier output not rewritten
    removed), D62 (this run's entries written before the earlier ones)."""
    a, b = _audio(tmp_path / "in" / "a.wav"), _audio(tmp_path / "in" / "b.wav")
    out = tmp_path / "out"
    assert _main([a], out) == 0
    assert _main([b], out) == 0
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == [
        "a.png", "a_interpretation.wav", "a_original.wav", "b.png", "b_interpretation.wav", "b_original.wav",
        "predictions.json",
    ]  # fmt: skip
    predictions = _predictions(out)
    assert list(predictions["files"]) == [a, b]
    assert predictions["outputs"] == [
        "a.png", "a_interpretation.wav", "a_original.wav", "b.png", "b_interpretation.wav", "b_original.wav",
    ]  # fmt: skip


def test_outputs_lists_only_the_files_still_there(stand_in, tmp_path):
    """--max_components 3 writes components 000, 001, 002; a rerun with 1 removes 000 and 002:
    "outputs" no longer names them (else a user's later file of that name would be taken for
    ours and written over). Catches D57 (removed files still listed)."""
    stand_in["components"] = True
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _main([clip], out, "--max_components", "3") == 0
    assert _main([clip], out, "--max_components", "1") == 0
    assert _predictions(out)["outputs"] == ["a.png", "a_component001.wav", "a_interpretation.wav", "a_original.wav"]


def test_a_rerun_that_fails_on_a_file_keeps_its_earlier_outputs(stand_in, tmp_path, monkeypatch):
    """a.wav explained, then the rerun cannot write a's outputs (a ValueError): exit 1, and a's
    earlier files and entry are still there. Catches D54 (the earlier outputs of the stem
    removed before writing, including those about to be written again)."""
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _main([clip], out) == 0

    def cannot_write(folder, clip_id, **_):
        raise ValueError(f"{clip_id}: cannot write")

    monkeypatch.setattr(interpret_files, "save_interpretation", cannot_write)
    assert _main([clip], out) == 1
    assert sorted(path.read_text() for path in out.glob("a*")) == ["a", "a", "a"]
    predictions = _predictions(out)
    assert predictions["files"][clip]["files"]["png"] == str(out / "a.png")
    assert predictions["errors"] == {clip: "a: cannot write"}


def test_an_unreadable_file_is_skipped_and_the_others_explained(stand_in, tmp_path, capsys):
    """bad.wav cannot be read (ValueError), good.wav can: exit 1, bad.wav in "errors", good.wav
    explained. Catches D55 (only FileNotFoundError skipped: the run crashed)."""
    bad, good = _audio(tmp_path / "in" / "bad.wav"), _audio(tmp_path / "in" / "good.wav")
    out = tmp_path / "out"
    assert _main([bad, good], out) == 1
    predictions = _predictions(out)
    assert list(predictions["files"]) == [good]
    assert predictions["errors"] == {bad: f"{bad} is not audio"}
    assert "1 of 2 files could not be explained" in capsys.readouterr().err


def test_a_killed_runs_ledger_is_not_listed_among_the_outputs(stand_in, tmp_path):
    """A ledger a killed run left (naming a.png): the rerun lists a's three files in "outputs",
    not the ledger, and removes it. Catches D58 (the ledger's name listed)."""
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_text("half")
    ledger = out / f"{interpret_files.LEDGER_PREFIX}0"
    ledger.write_text("a.png\n")
    assert _main([clip], out) == 0
    assert _predictions(out)["outputs"] == ["a.png", "a_interpretation.wav", "a_original.wav"]
    assert not ledger.exists() and (out / "a.png").read_text() == "a"


def test_a_renamed_output_is_told_and_noted_in_predictions_json(stand_in, tmp_path, capsys):
    """x/dog.wav and y/dog.wav: the second's outputs are dog-2*, said on stderr and kept in
    "notes". Catches D59 (notes not written), D60 (notes not printed by the main process)."""
    first, second = _audio(tmp_path / "x" / "dog.wav"), _audio(tmp_path / "y" / "dog.wav")
    out = tmp_path / "out"
    assert _main([first, second], out) == 0
    note = f"{second}: its outputs are named dog-2* in {out} (dog is the name of another input's outputs)."
    assert f"audio-interpret: {note}" in capsys.readouterr().err
    predictions = _predictions(out)
    assert predictions["notes"] == [note]
    assert predictions["files"][second]["files"]["png"] == str(out / "dog-2.png")
