"""A real-recording development set, fetched from Debian packages (never committed).

Real animal calls as target classes, real music, speech and ambiences as
backgrounds, taken from packages of the Debian archive with ``apt-get
download`` (no root rights, nothing installed), then cut into a ground-truth
dataset by `data_prep.collection_prepare` at the demo's sizes::

    python data_prep/fetch_debian_sounds.py --out DIR            # the recordings only
    python data_prep/fetch_debian_sounds.py --out DIR --build    # and DIR/dataset
    python data_prep/fetch_debian_sounds.py --out DIR --set instruments --build

The second command is the whole recipe: it fetches what is missing, then
writes ``DIR/dataset`` (10 classes x 40 clips of 3 s at 16 kHz, SNR -5..5 dB,
seed 1234, as `python data_prep/collection_prepare.py --targets DIR/targets
--backgrounds DIR/backgrounds --out DIR/dataset` does with its defaults), on
which every recipe runs with ``--data_folder DIR/dataset``. It writes

    DIR/targets/<class>/<source>_<name>.ogg      10 classes, `TARGETS`
    DIR/backgrounds/<kind>_<name>.{wav,ogg}      music, speech, ambiences, `BACKGROUNDS`
    DIR/licenses/<package>.copyright             the packages' copyright files

The third builds a second set to check a method on sounds it was not built on
(`DEV_SETS`): ten instruments of GCompris, one recording each
(`INSTRUMENT_TARGETS`, in ``DIR/instruments/<class>/``), over the same
backgrounds, into ``DIR/dataset_instruments`` at the same sizes.

The files are the packages' own bytes (Ogg Vorbis and wav at 44.1 kHz; the Asterisk
wavs are 8 kHz 16-bit PCM), each checked to be readable by soundfile. The
GCompris sounds live inside Qt resource archives (``.rcc``), read by
`data_prep.qt_rcc`. The packages:

- ``gcompris-qt-data``: the farm animals of the activity "explore_farm_animals",
  dog barks, rain and a train of "memory-sound", world music of
  "explore_world_music", harbour and lock-filling water, and the instruments of
  "instruments";
- ``tuxpaint-stamps-default``: a second (and third) recording of most animals,
  and the donkey;
- ``asterisk-moh-opsound-wav``: music on hold;
- ``asterisk-core-sounds-en-wav``: spoken prompts (one female voice).

Each file's license is in its package's copyright file, copied to
DIR/licenses/ (GCompris: GPL-3 and, file by file, CC-BY / CC-BY-SA / CC0; Tux
Paint stamps: GPL-2; Asterisk sounds: CC-BY-SA 3.0): the set is for local
development, never committed.

Rerunning skips every file already present (and downloads nothing when all
are). A missing ``apt-get`` / ``dpkg-deb``, no network, or a package whose
layout changed is a `FetchError` that says so and what to do.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import io
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import soundfile as sf
from speechbrain.utils.logger import get_logger

from data_prep.audio import AUDIO_READ_ERRORS
from data_prep.collection_prepare import create_collection_dataset
from data_prep.files import write_bytes
from data_prep.qt_rcc import RccArchive

logger = get_logger(__name__)

GCOMPRIS = "gcompris-qt-data"
TUXPAINT = "tuxpaint-stamps-default"
MUSIC_ON_HOLD = "asterisk-moh-opsound-wav"
PROMPTS = "asterisk-core-sounds-en-wav"

_RCC = "usr/share/gcompris-qt/rcc"
_ACTIVITIES = "gcompris/src/activities"
_FARM = (f"{_RCC}/explore_farm_animals.rcc", f"{_ACTIVITIES}/explore_farm_animals/resource/animals")
_MEMORY = (f"{_RCC}/memory-sound.rcc", f"{_ACTIVITIES}/memory-sound/resource")
_WORLD = (f"{_RCC}/explore_world_music.rcc", f"{_ACTIVITIES}/explore_world_music/resource/music")
_STAMPS = "usr/share/tuxpaint/stamps/animals"
_ALLISON = "usr/share/asterisk/sounds/en_US_f_Allison"

#: The demo's sizes (hparams/demo.yaml `dataset:` and `common: seed`).
DEV_SIZES = {
    "per_class": 40,
    "duration_s": 3.0,
    "snr_db_range": (-5.0, 5.0),
    "sample_rate": 16000,
    "seed": 1234,
}
DATASET_FOLDER = "dataset"  # DIR/dataset with --build
APT_TIMEOUT_S = 1800


class Source(NamedTuple):
    """One file of the development set and where it comes from."""

    destination: str  # relative to DIR
    package: str  # Debian package
    member: str  # path inside the package
    entry: str = ""  # path inside the member when it is a Qt resource archive


def _gcompris(destination, archive, name):
    rcc, folder = archive
    return Source(destination, GCOMPRIS, rcc, f"{folder}/{name}")


#: Target classes: 10, several recordings and seconds each (durations at 44.1 kHz).
TARGETS = (
    _gcompris("targets/cat/gcompris_cat.ogg", _FARM, "cat.ogg"),  # 2.2 s
    _gcompris("targets/chicken/gcompris_chickens.ogg", _FARM, "chickens.ogg"),  # 12.4 s
    Source("targets/chicken/tuxpaint_hen.ogg", TUXPAINT, f"{_STAMPS}/birds/hen.ogg"),  # 1.5 s
    _gcompris("targets/cow/gcompris_cow.ogg", _FARM, "cow.ogg"),  # 4.5 s
    Source("targets/cow/tuxpaint_cow.ogg", TUXPAINT, f"{_STAMPS}/mammals/bovines/cow.ogg"),
    Source(
        "targets/cow/tuxpaint_cow_white.ogg", TUXPAINT, f"{_STAMPS}/mammals/bovines/cow_white.ogg"
    ),
    _gcompris("targets/dog/gcompris_dog.ogg", _FARM, "dog.ogg"),  # 0.9 s
    _gcompris("targets/dog/gcompris_bark_1.ogg", _MEMORY, "LRBark_1_LA_cut.ogg"),  # 1.8 s
    _gcompris("targets/dog/gcompris_bark_3.ogg", _MEMORY, "LRBark_3_LA_cut.ogg"),  # 2.4 s
    Source("targets/dog/tuxpaint_dog.ogg", TUXPAINT, f"{_STAMPS}/mammals/dogs/dog.ogg"),
    Source(
        "targets/donkey/tuxpaint_donkey.ogg", TUXPAINT, f"{_STAMPS}/mammals/equines/donkey.ogg"
    ),  # 3.1 s
    _gcompris("targets/duck/gcompris_duck.ogg", _FARM, "duck.ogg"),  # 4.9 s
    Source("targets/duck/tuxpaint_duck.ogg", TUXPAINT, f"{_STAMPS}/birds/duck.ogg"),  # 3.2 s
    Source("targets/duck/tuxpaint_drake.ogg", TUXPAINT, f"{_STAMPS}/birds/drake.ogg"),  # 0.6 s
    _gcompris("targets/horse/gcompris_horse.ogg", _FARM, "horse.ogg"),  # 3.5 s
    Source("targets/horse/tuxpaint_horse.ogg", TUXPAINT, f"{_STAMPS}/mammals/equines/horse.ogg"),
    _gcompris("targets/owl/gcompris_owl.ogg", _FARM, "owl.ogg"),  # 2.3 s
    Source("targets/owl/tuxpaint_owl.ogg", TUXPAINT, f"{_STAMPS}/birds/owl.ogg"),  # 1.2 s
    _gcompris("targets/pig/gcompris_pig.ogg", _FARM, "pig.ogg"),  # 5.7 s
    Source("targets/pig/tuxpaint_pig.ogg", TUXPAINT, f"{_STAMPS}/mammals/pig.ogg"),  # 0.6 s
    _gcompris("targets/sheep/gcompris_sheep.ogg", _FARM, "sheep.ogg"),  # 1.3 s
    Source("targets/sheep/tuxpaint_sheep.ogg", TUXPAINT, f"{_STAMPS}/mammals/bovines/sheep.ogg"),
    Source(
        "targets/sheep/tuxpaint_lamb.ogg", TUXPAINT, f"{_STAMPS}/mammals/bovines/sheep_lamb.ogg"
    ),  # 0.5 s
)

#: Backgrounds: all at least as long as a 3 s clip.
BACKGROUNDS = (
    Source(
        "backgrounds/music_cold_day.wav",
        MUSIC_ON_HOLD,
        "usr/share/asterisk/moh/macroform-cold_day.wav",
    ),  # 244 s, 8 kHz
    Source(
        "backgrounds/music_morning_coffee.wav",
        MUSIC_ON_HOLD,
        "usr/share/asterisk/moh/manolo_camp-morning_coffee.wav",
    ),  # 73 s, 8 kHz
    _gcompris("backgrounds/music_japan.ogg", _WORLD, "japan.ogg"),  # 25 s
    _gcompris("backgrounds/music_ireland.ogg", _WORLD, "ireland.ogg"),  # 48 s
    Source("backgrounds/speech_demo_instruct.wav", PROMPTS, f"{_ALLISON}/demo-instruct.wav"),
    Source("backgrounds/speech_demo_congrats.wav", PROMPTS, f"{_ALLISON}/demo-congrats.wav"),
    Source(
        "backgrounds/speech_callee_options.wav", PROMPTS, f"{_ALLISON}/priv-callee-options.wav"
    ),  # 73, 30, 31 s, 8 kHz
    _gcompris("backgrounds/ambience_rain.ogg", _MEMORY, "LRRain_in_garden_01_LA_cut.ogg"),  # 5 s
    _gcompris(
        "backgrounds/ambience_train.ogg", _MEMORY, "LRTrain_slowing_down_01_LA_cut.ogg"
    ),  # 4.8 s
    Source(
        "backgrounds/ambience_harbour.wav",
        GCOMPRIS,
        f"{_RCC}/watercycle.rcc",
        f"{_ACTIVITIES}/watercycle/resource/harbor2.wav",
    ),  # 4.0 s
    Source(
        "backgrounds/ambience_water_fill.wav",
        GCOMPRIS,
        f"{_RCC}/canal_lock.rcc",
        f"{_ACTIVITIES}/canal_lock/resource/water_fill.wav",
    ),  # 3.5 s
)

_INSTRUMENTS = (f"{_RCC}/instruments.rcc", f"{_ACTIVITIES}/instruments/resource")

#: The second set's target classes: GCompris' ten instruments, one recording each (5.4-11.8 s
#: at 44.1 kHz, the drum kit 3.8 s; cello, drum kit, piano and violin in stereo).
INSTRUMENT_TARGETS = tuple(
    _gcompris(f"instruments/{name}/gcompris_{name}.ogg", _INSTRUMENTS, f"{name}.ogg")
    for name in (
        "accordion",
        "bongo",
        "cello",
        "clarinet",
        "drum_kit",
        "harmonica",
        "piano",
        "saxophone",
        "triangle",
        "violin",
    )
)


class DevSet(NamedTuple):
    """One development set: its target classes, where they go under DIR, its dataset folder."""

    targets: tuple  # of Source
    targets_folder: str  # DIR/<targets_folder>/<class>/...
    dataset_folder: str  # DIR/<dataset_folder> with --build


#: The sets `--set` names, over the same `BACKGROUNDS`: "animals", the one `make demo-real`
#: builds, and "instruments", to check on sounds a method was not tuned on.
DEV_SETS = {
    "animals": DevSet(TARGETS, "targets", DATASET_FOLDER),
    "instruments": DevSet(INSTRUMENT_TARGETS, "instruments", "dataset_instruments"),
}


def set_sources(name="animals"):
    """Every file the set `name` needs: its targets, the backgrounds, and the copyright file of
    each package they come from (in the order the packages first appear)."""
    recordings = DEV_SETS[name].targets + BACKGROUNDS
    packages = dict.fromkeys(source.package for source in recordings)
    return recordings + tuple(
        Source(f"licenses/{package}.copyright", package, f"usr/share/doc/{package}/copyright")
        for package in packages
    )


SOURCES = set_sources("animals")


class FetchError(RuntimeError):
    """The recordings cannot be fetched here; the message says why and what to do."""


def missing_sources(out_dir, sources=SOURCES):
    """The sources whose destination under `out_dir` is not there yet."""
    return [source for source in sources if not (Path(out_dir) / source.destination).is_file()]


def _require_tools():
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FetchError(
                f"{tool} is not available: this script takes real recordings out of Debian "
                f"packages, so run it on Debian or Ubuntu (any user, no root needed), or copy a "
                f"folder it made elsewhere."
            )


def download_packages(packages, folder):
    """`apt-get download` the packages into `folder`: {package: path of its .deb}."""
    command = ["apt-get", "download", *packages]
    try:
        done = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise FetchError(
            f"`{' '.join(command)}` took more than {APT_TIMEOUT_S} s: check the network."
        ) from err
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        errors = [line for line in lines if not line.startswith("W:")] or lines  # not warnings
        tail = "\n".join(errors[-5:])
        raise FetchError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}\nIf it is offline, "
            f"connect to the network (a Debian mirror); if a package is unknown, run "
            f"`apt-get update` (Debian 12 has them all in main)."
        )
    debs = {}
    for package in packages:
        found = sorted(Path(folder).glob(f"{package}_*.deb"))
        if not found:
            raise FetchError(f"apt-get download {package} left no {package}_*.deb in {folder}.")
        debs[package] = found[-1]
    return debs


def read_members(deb, members):
    """{member: bytes} of the wanted `members` of a .deb (paths without "./").

    Streams the package's file tree (`dpkg-deb --fsys-tarfile`, whatever its
    compression) and keeps only the wanted members.
    """
    wanted, found, tar_error = set(members), {}, None
    command = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for info in tar:
                    name = info.name.removeprefix("./")
                    if name in wanted and info.isfile():
                        found[name] = tar.extractfile(info).read()
        except tarfile.TarError as err:  # no tar stream: dpkg-deb failed, or not a .deb
            tar_error = err
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace").strip()
        returncode = proc.wait()
    if returncode != 0 or tar_error is not None:
        reason = stderr or f"its file tree is not a tar stream: {tar_error}"
        raise FetchError(
            f"dpkg-deb could not unpack {deb} (exit {returncode}): {reason}. Run the command "
            f"again: it downloads the package anew."
        )
    absent = sorted(wanted - set(found))
    if absent:
        raise FetchError(
            f"{deb.name} has no {', '.join(absent)}: the package's layout changed; update "
            f"the paths in data_prep/fetch_debian_sounds.py."
        )
    return found


def _describe(content, destination):
    """'2.2 s, 44100 Hz' for audio (checked readable by soundfile), '' for other files."""
    if destination.startswith("licenses/"):
        return ""
    try:
        info = sf.info(io.BytesIO(content))
    except AUDIO_READ_ERRORS as err:
        raise FetchError(
            f"{destination} is not audio soundfile can read ({err}); update "
            f"data_prep/fetch_debian_sounds.py."
        ) from err
    return f"{info.duration:.1f} s, {info.samplerate} Hz"


def fetch_debian_sounds(out_dir, sources=SOURCES):
    """Fetches the development set's recordings into `out_dir`; skips those present.

    Arguments
    ---------
    out_dir : str or path-like
        Gets targets/, backgrounds/ and licenses/.
    sources : sequence of Source
        What to fetch (`SOURCES`).

    Returns
    -------
    list of Source
        Those fetched now (empty when every file was there).
    """
    out = Path(out_dir)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():  # before any download (about 240 MB)
        raise ValueError(f"--out {out_dir}: {existing} is a file, not a folder; give a folder for the recordings.")
    missing = missing_sources(out, sources)
    if not missing:
        logger.info("All %d recordings and licenses are in %s already.", len(sources), out)
        return []
    _require_tools()
    packages = sorted({source.package for source in missing})
    logger.info("Fetching %d files from %s.", len(missing), ", ".join(packages))
    with tempfile.TemporaryDirectory(prefix="debian_sounds_") as folder:
        debs = download_packages(packages, folder)
        for package, deb in debs.items():
            wanted = [source for source in missing if source.package == package]
            members = read_members(deb, {source.member for source in wanted})
            archives = {}
            for source in wanted:
                content = members[source.member]
                if source.entry:
                    if source.member not in archives:
                        archives[source.member] = RccArchive(content, f"{deb.name}:{source.member}")
                    content = archives[source.member].read(source.entry)
                description = _describe(content, source.destination)
                write_bytes(content, out / source.destination)
                logger.info(
                    "Fetched %s (%s) from %s.",
                    source.destination,
                    description or f"{len(content)} bytes",
                    deb.name,
                )
    return missing


def build_dev_set(out_dir, set_name="animals", **overrides):
    """Fetches the set's recordings (if missing), then writes or reuses its dataset folder
    (`out_dir`/dataset for "animals", `out_dir`/dataset_instruments for "instruments")."""
    out, dev_set = Path(out_dir), DEV_SETS[set_name]
    fetch_debian_sounds(out, set_sources(set_name))
    dataset = out / dev_set.dataset_folder
    try:
        return create_collection_dataset(
            out / dev_set.targets_folder, out / "backgrounds", dataset, **{**DEV_SIZES, **overrides}
        )
    except ValueError as error:  # its fix names collection_prepare's out_dir: say what it is here
        raise ValueError(
            f"{error} Here that folder is {dataset}, which --build always writes: move "
            "your files out of it, or give another --out."
        ) from None


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Fetch real recordings from Debian packages (targets, backgrounds) and, "
        "with --build, cut the development dataset from them."
    )
    parser.add_argument("--out", required=True, help="folder for targets/, backgrounds/, ...")
    parser.add_argument(
        "--build",
        action="store_true",
        help="also cut the set's dataset (OUT/dataset, OUT/dataset_instruments) with "
        "collection_prepare at the demo's sizes",
    )
    parser.add_argument(
        "--set",
        dest="set_name",
        choices=sorted(DEV_SETS),
        default="animals",
        help="which targets: the farm animals (the default, `make demo-real`'s) or ten "
        "instruments, a second set over the same backgrounds",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Command line entry point; prints a one-line summary."""
    args = _parse_args(argv)
    start_time = time.perf_counter()
    if args.build:
        root = build_dev_set(args.out, args.set_name)
        print(f"Development dataset at {root} ({time.perf_counter() - start_time:.1f} s)")
    else:
        fetched = fetch_debian_sounds(args.out, set_sources(args.set_name))
        print(
            f"{len(fetched)} files fetched into {args.out} "
            f"({time.perf_counter() - start_time:.1f} s)"
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except (FetchError, ValueError, FileNotFoundError) as error:
        sys.exit(f"fetch_debian_sounds: error: {error}")
