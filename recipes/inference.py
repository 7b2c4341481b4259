"""Pretrained interpreters the SpeechBrain way: `AudioInterpreter.from_hparams`.

`AudioInterpreter` (a `speechbrain.inference.interfaces.Pretrained`) loads the
inference folder a training run exported (`recipes.inference_export`) from the
folder or a hub id, and explains audio with the recipe's own Brain (the
`interpreter_class` of the yaml, built as eval.py builds it), so the numbers
are eval's:

    >>> from recipes.inference import AudioInterpreter  # doctest: +SKIP
    >>> interpreter = AudioInterpreter.from_hparams(source="results/piq/1234/inference")  # doctest: +SKIP
    >>> result = interpreter.interpret_file("dog.flac")  # doctest: +SKIP
    >>> result["class"], result["probability"], result["interpretation"].shape  # doctest: +SKIP

A file is read as the training clips are (`data_prep.esc50_prepare`: any
format soundfile reads, any channel count downmixed, any sample rate
resampled), then zero-padded or cropped to `signal_length_s` (with a warning
when cropped) and peak-normalised. The command that explains many files is
`recipes/interpret_files.py` (`audio-interpret`).

Authors
 * audio-interpret contributors 2026
"""

import glob
import os

import torch
import torchaudio
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, fetch
from speechbrain.utils.logger import get_logger
from speechbrain.utils.run_opts import RunOptions

from data_prep.esc50_prepare import (
    EPS,
    LABEL_ENCODER_FILE,
    pad_or_crop,
    peak_normalise,
)
from recipes.brains import build_brain
from recipes.explain_file import read_single_file
from recipes.inference_export import HPARAMS_FILE, INFERENCE_FOLDER, inference_spec

logger = get_logger(__name__)
# ---------------------------------------------------------------------------
# The pretrained interface
# ---------------------------------------------------------------------------


def _is_hub_id(source):
    """True for "owner/name" that is not a local path (a folder path has other forms)."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and not os.path.exists(source)


def local_inference_folders(root="results"):
    """Inference folders exported under `root` (results/<experiment>/<seed>/inference), sorted."""
    pattern = os.path.join(root, "*", "*", INFERENCE_FOLDER, HPARAMS_FILE)
    return sorted(os.path.dirname(path) for path in glob.glob(pattern))


def resolve_source(source, hparams_file=HPARAMS_FILE):
    """The folder to load for a local `source`, or `source` itself for a hub id.

    A training run's output folder stands for its `inference/` folder.

    Raises
    ------
    FileNotFoundError
        `source` is neither an inference folder nor a hub id.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        nested = os.path.join(source, INFERENCE_FOLDER)
        if os.path.isfile(os.path.join(nested, hparams_file)):
            logger.info("%s is a training run: loading its %s/ folder.", source, INFERENCE_FOLDER)
            return nested
        yaml_path = os.path.join(source, hparams_file)
        if not os.path.isfile(yaml_path):
            raise FileNotFoundError(
                f"{source} has no {hparams_file}: give the inference folder a training run "
                f"exported (<output_folder>/{INFERENCE_FOLDER}, e.g. results/piq/1234/{INFERENCE_FOLDER})."
            )
        with open(yaml_path, encoding="utf-8") as fin:
            if "pretrained_path:" not in fin.read():
                raise ValueError(
                    f"{yaml_path} is not an exported inference yaml (it has no pretrained_path; "
                    "a training yaml?): give the <output_folder>/inference folder of the run."
                )
        return source
    if _is_hub_id(source):
        return source
    raise FileNotFoundError(
        f"The interpreter {source} does not exist: give the inference folder a training run "
        f"exported (<output_folder>/{INFERENCE_FOLDER}) or a hub id (owner/name)."
    )


def _hub_error(source, error):
    """The error for a hub id that cannot be fetched: it names the local folders to use."""
    found = local_inference_folders()
    example = found[0] if found else f"results/piq/1234/{INFERENCE_FOLDER}"
    here = f" Exported here: {', '.join(found)}." if found else ""
    return FileNotFoundError(
        f"Could not fetch the interpreter {source!r} from the Hugging Face hub "
        f"({type(error).__name__}: {error}). Offline, or no such model? Give a local folder "
        f"instead: the inference folder a training run exports, "
        f"<output_folder>/{INFERENCE_FOLDER} (source={example!r}), or a copy of the hub "
        f"model downloaded where there is a network.{here}"
    )


class AudioInterpreter(Pretrained):
    """A trained interpreter (L2I, PIQ or L-MAC) and its frozen classifier, for inference.

    Load it with `from_hparams` on an exported inference folder (or a hub id);
    the yaml's `interpreter_class` is the recipe's Brain, which does the work
    (preprocess -> classify -> interpret -> apply_mask -> interpretation_audio),
    so the results are eval.py's. Runs where `run_opts={"device": ...}` says;
    tensors come back on that device.

    Arguments
    ---------
    modules, hparams, run_opts, freeze_params
        As `Pretrained`; `from_hparams` gives them.

    Example
    -------
    >>> interpreter = AudioInterpreter.from_hparams(source="results/piq/1234/inference")  # doctest: +SKIP
    >>> interpreter.interpret_file("clip.ogg")["class"]  # doctest: +SKIP
    'dog'
    """

    HPARAMS_NEEDED = ["interpreter_class", "label_encoder", "pretrainer", "sample_rate", "signal_length_s"]

    def __init__(self, modules=None, hparams=None, run_opts=None, freeze_params=True):
        # frozen below, once the Brain is built (it reports the parameters it is given)
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts, freeze_params=False)
        self.method = hparams["interpreter_class"].__name__
        self.label_encoder = hparams["label_encoder"]
        n_classes = hparams.get("out_n_neurons", len(self.label_encoder))
        if len(self.label_encoder) != n_classes:
            raise ValueError(
                f"The label encoder has {len(self.label_encoder)} classes but the classifier "
                f"{n_classes}: the folder's {LABEL_ENCODER_FILE} is missing or from another run."
            )
        missing = [key for key in inference_spec(self.method)["keys"] if key not in hparams]
        if missing:  # a folder exported before the key existed
            added = {"relevance_centered": "False keeps the reference relevance it was made with"}
            hints = "; ".join(f"{key}: {added[key]}" for key in missing if key in added)
            raise ValueError(
                f"The {self.method} inference yaml has no {', '.join(missing)}: it was exported by an "
                "older version of recipes/inference_export.py. Add the key(s) to its "
                f"{HPARAMS_FILE}{f' ({hints})' if hints else ''}, or export the training run again."
            )
        brain_hparams = dict(hparams)
        for name, path_key in inference_spec(self.method)["frozen"].items():
            brain_hparams[path_key] = str(hparams["pretrainer"].paths[name])  # the fetched copy
        self.brain = build_brain(
            hparams["interpreter_class"],
            brain_hparams,
            {**_overridden(run_opts), "device": self.device},
            train=False,
            label_encoder=self.label_encoder,
        )
        if freeze_params:
            self.mods.eval()
            for parameter in self.mods.parameters():
                parameter.requires_grad_(False)
        self.sample_rate = int(hparams["sample_rate"])
        self.n_samples = int(round(self.sample_rate * hparams["signal_length_s"]))

    @classmethod
    def from_hparams(cls, source, hparams_file=HPARAMS_FILE, savedir=None, overrides=None, **kwargs):
        """Loads an exported inference folder, or a hub model of the same layout.

        Arguments
        ---------
        source : str or Path
            The inference folder (`<output_folder>/inference`; the training
            output folder itself also works) or a hub id "owner/name".
        hparams_file : str
        savedir : str or Path, optional
            Where to collect the files (links for a folder, copies from the
            hub); by default a folder is read in place and the hub cache is used.
        overrides : dict, optional
            Yaml overrides.
        **kwargs
            For `speechbrain.inference.interfaces.pretrained_from_hparams`
            (`run_opts={"device": "cuda:0"}`, `fetch_config`, ...).

        Raises
        ------
        FileNotFoundError
            No such folder, or the hub id cannot be fetched (offline): the
            message names the local folder to give instead.
        """
        source = resolve_source(source, hparams_file)
        if _is_hub_id(source):
            try:  # fetch the yaml first: without a network this is where it fails
                fetch(hparams_file, source=source, savedir=savedir, fetch_config=kwargs.get("fetch_config", FetchConfig()))
            except Exception as error:  # huggingface_hub and requests raise many kinds
                raise _hub_error(source, error) from error
        else:
            source = os.path.abspath(source)
        overrides = {"pretrained_path": source, **(overrides or {})}
        return super().from_hparams(source, hparams_file=hparams_file, savedir=savedir, overrides=overrides, **kwargs)

    # ------------------------------------------------------------------ input
    def load_audio(self, path):
        """A file as the classifier hears it before cropping: mono at its sample rate, (T,).

        Any format soundfile reads (wav, flac, ogg, mp3, ...); channels are
        averaged and the sample rate converted as for the training clips.

        Raises
        ------
        FileNotFoundError
            `path` is not a file.
        ValueError
            soundfile cannot read it, or it holds no sample.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (or is not a file): give an audio file.")
        return read_single_file(path, self.sample_rate, prefix="")  # eval's reader and messages

    def prepare_batch(self, wavs, wav_lens=None, sample_rate=None, names=None):
        """Clips as the classifier was trained on: (B, n_samples), and warnings.

        Arguments
        ---------
        wavs : torch.Tensor
            (T,), (B, T) or (B, T, C) (channels averaged).
        wav_lens : torch.Tensor, optional
            (B,) relative lengths in [0, 1] (SpeechBrain's convention); the rest
            of each row is padding.
        sample_rate : int, optional
            The rate of `wavs` when it is not the interpreter's.
        names : list of str, optional
            How the warnings name the clips (default "clip <i>").

        Returns
        -------
        clips : torch.Tensor
            (B, n_samples), each clip zero-padded or cropped (its start kept) and
            peak-normalised, on the interpreter's device.
        warnings : list of str
            A sentence per cropped or silent clip (also logged).
        """
        wavs = torch.as_tensor(wavs, dtype=torch.float32)
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        elif wavs.dim() == 3:
            wavs = wavs.mean(dim=-1)  # (B, T, C) -> (B, T)
        elif wavs.dim() != 2:
            raise ValueError(f"wavs of shape {tuple(wavs.shape)}: give (T,), (B, T) or (B, T, C).")
        wavs = wavs.to(self.device)
        if sample_rate is not None and sample_rate != self.sample_rate:
            wavs = torchaudio.functional.resample(wavs, sample_rate, self.sample_rate)
        batch, length = wavs.shape
        if wav_lens is None:
            lengths = torch.full((batch,), length, device=wavs.device)
        else:
            lengths = (torch.as_tensor(wav_lens, device=wavs.device).float() * length).round().long()
            wavs = wavs * (torch.arange(length, device=wavs.device) < lengths[:, None])  # padding to 0
        clips = peak_normalise(pad_or_crop(wavs, self.n_samples))  # (B, n_samples), as load_clip
        names = names or [f"clip {i}" for i in range(batch)]
        clip_s = self.n_samples / self.sample_rate
        warnings = []
        for i in (lengths > self.n_samples).nonzero().flatten().tolist():
            warnings.append(
                f"{names[i]} is {lengths[i].item() / self.sample_rate:g} s long but the interpreter "
                f"takes clips of signal_length_s = {clip_s:g} s: only its first {clip_s:g} s is "
                "explained (cropped as in training)."
            )
        for i in (clips.abs().amax(dim=1) <= EPS).nonzero().flatten().tolist():
            warnings.append(
                f"{names[i]} is silent (every sample is 0): the prediction is the classifier's "
                "answer to silence, not to a sound."
            )
        for warning in warnings:
            logger.warning(warning)
        return clips, warnings

    # ------------------------------------------------------------------ interpretation
    def _outputs(self, outputs, clips, warnings):
        classes = outputs["classes"]
        probs = outputs["probs"]
        result = {
            "class": [self.brain.class_name(c) for c in classes.tolist()],
            "class_index": classes,
            "probability": probs.gather(1, classes[:, None]).squeeze(1),
            "probs": probs,
            "mask": outputs["mask"],
            "interpretation": outputs["audio"],
            "input": clips,
            "X": outputs["X"],
            "X_int": outputs["X_int"],
            "sample_rate": self.sample_rate,
            "warnings": warnings,
        }
        if "relevance" in outputs:  # L2I: each NMF component's relevance and whether it is kept
            result.update(relevance=outputs["relevance"], selected=outputs["selected"])
        return result

    def interpret_batch(self, wavs, wav_lens=None, sample_rate=None):
        """Classifies and explains a batch of waveforms.

        Arguments
        ---------
        wavs, wav_lens, sample_rate
            See `prepare_batch` (the interpreter's sample rate by default).

        Returns
        -------
        dict
            "class" (B names), "class_index" (B,), "probability" (B,), "probs"
            (B, N), "mask" (B, frames, F), "interpretation" (B, n_samples) the
            interpretation waveform, "input" (B, n_samples) the clips as
            classified, "X" / "X_int" (B, frames, F), "sample_rate", "warnings";
            for L2I also "relevance" and "selected" (B, K).
        """
        clips, warnings = self.prepare_batch(wavs, wav_lens, sample_rate)
        return self._outputs(self.brain.explain(clips), clips, warnings)

    def interpret_file(self, path):
        """Classifies and explains one audio file (as `eval.py --single_sample` does).

        Returns
        -------
        dict
            As `interpret_batch` for the one clip, without the batch dimension
            ("class" a name, "probability" a float, "mask" (frames, F),
            "interpretation" (n_samples,) ...), plus "file" and, for L2I,
            "components": [{"component": k, "relevance": r_k, "waveform": (n_samples,)}]
            for each relevant NMF component.

        Raises
        ------
        FileNotFoundError, ValueError
            As `load_audio`.
        """
        path = os.fspath(path)
        clips, warnings = self.prepare_batch(self.load_audio(path), names=[path])
        components = None
        if hasattr(self.brain, "component_audio"):  # L2I: the audio of each relevant component
            components, outputs = self.brain.component_audio(clips[0])
        else:
            outputs = self.brain.explain(clips)
        batch = self._outputs(outputs, clips, warnings)
        result = {key: value[0] if key not in ("sample_rate", "warnings") else value for key, value in batch.items()}
        result["probability"] = float(result["probability"])
        result["class_index"] = int(result["class_index"])
        result["file"] = path
        if components is not None:
            result["components"] = [
                {"component": k, "relevance": relevance, "waveform": audio} for k, relevance, audio in components
            ]
        return result

    def forward(self, wavs, wav_lens=None):
        """`interpret_batch(wavs, wav_lens)`."""
        return self.interpret_batch(wavs, wav_lens)


def _overridden(run_opts):
    """The options a user gave (dict or RunOptions), for the Brain."""
    if run_opts is None:
        return {}
    if isinstance(run_opts, RunOptions):
        return {key: run_opts[key] for key in run_opts.overridden_args}
    return dict(run_opts)
