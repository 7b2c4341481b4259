"""L-MAC's mask decoders, the Qt resource archive reader and the interpreters' training flow (audit).

- models/LMAC.py: every transposed convolution of a decoder gets a hand-set kernel that is 1 at
  one tap (last row, first column) and 0 elsewhere, so one nonzero cell of the hidden map
  becomes exactly one nonzero cell of the logits, at a place worked out here from the
  transposed convolution's rule (input i -> output i * stride - padding + tap, padding 1)
  and the stages written out by hand; then L-MAC's own `interpret` puts it onto the
  spectrogram (crop / pad, the backbone's resize, AST's mel axis) and applies the sigmoid.
  A transposed or flipped grid has the right shape and the wrong cell.
- data_prep/qt_rcc.py: archives written byte by byte from the format (Qt's rcc.cpp), not by
  the reader.
- recipes/interpreters/training.py: the flow with recording stand-ins.
"""

import math
import struct
import sys
import types
import zlib

import pytest
import speechbrain as sb
import torch
from conftest import bare_brain

from data_prep.qt_rcc import RccArchive
from models.LMAC import ASTGridMaskDecoder, Conv2dMaskDecoder, GridMaskDecoder
from models.transformer_backbones import AudioAST
from recipes.interpreters import training
from recipes.interpreters.lmac import LMAC

# ---------------------------------------------------------------------------
# models/LMAC.py: where one hidden cell lands
# ---------------------------------------------------------------------------

# The up-sampling stages, (kernel, stride) with padding 1, copied from the seed / PIQ decoders
# (not read from the code): the output layer is stride 1, padding 1.
CONV2D_STAGES, CONV2D_OUT = ((3, 2), (4, 2), (4, 2), (4, 2)), 12
VIT_STAGES, VIT_OUT = ((3, (4, 5)), ((4, 1), 2), ((4, 1), 2), ((4, 2), 2)), (10, 8)
GRID_STAGES, GRID_OUT = ((4, 2), (4, 2), (4, 2)), 3


def _axis(value, axis):
    return value[axis] if isinstance(value, tuple) else value


def hand_cell(cell, stages, out_kernel):
    """Where a hidden cell (t, f) lands through the one-tap kernels: each layer maps i to
    i * stride - 1 + tap, the tap the kernel's last row (time) and first column (frequency)."""
    landed = []
    for axis, index in enumerate(cell):
        for kernel, stride in stages:
            tap = _axis(kernel, axis) - 1 if axis == 0 else 0
            index = index * _axis(stride, axis) - 1 + tap
        tap = _axis(out_kernel, axis) - 1 if axis == 0 else 0
        landed.append(index - 1 + tap)
    return tuple(landed)


def hand_size(size, stages, out_kernel):
    """(T', F') -> the decoder's output size: (n - 1) * stride - 2 + kernel per layer."""
    out = []
    for axis, n in enumerate(size):
        for kernel, stride in stages:
            n = (n - 1) * _axis(stride, axis) - 2 + _axis(kernel, axis)
        out.append(n - 1 - 2 + _axis(out_kernel, axis))
    return tuple(out)


def one_tap(decoder):
    """The decoder in eval mode, each transposed convolution all channels to all channels with
    a kernel that is 1 at (last row, first column), biases 0; batch norms the identity."""
    with torch.no_grad():
        for module in decoder.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.zero_()
                module.weight[:, :, -1, 0] = 1.0
                module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.reset_parameters()
    return decoder.eval()


def hidden_cell(dim, size, cell):
    h = torch.zeros(1, dim, *size)
    h[0, :, cell[0], cell[1]] = 1.0
    return h


def nonzero_cells(x):
    return [tuple(i) for i in torch.nonzero(x[0]).tolist()]


def bilinear_weights(index, n_in, n_out):
    """A 1-D linear resize (align_corners False: output i reads source (i + 0.5) n_in / n_out
    - 0.5, floored at 0, between its two neighbours) of the unit vector at `index`."""
    weights = []
    for i in range(n_out):
        source = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        low = math.floor(source)
        high, frac = min(low + 1, n_in - 1), source - low
        weights.append((1 - frac) * (low == index) + frac * (high == index))
    return weights


def support(weights):
    return [i for i, w in enumerate(weights) if w > 0]


def htk_mel(hz):
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_bins(band_weights, n_bins=513, sample_rate=16000, low_hz=20.0):
    """Each linear bin reads the mel map at its place: bin k at k * nyquist / (n_bins - 1) Hz
    sits at mel position (mel(f) - mel(20)) / (mel(nyquist) - mel(20)) * (n_mels + 1) - 1
    (filter i peaks at the (i + 1)-th of n_mels + 2 equally spaced mel points), clamped,
    linearly between the two nearest bands."""
    n_mels, nyquist = len(band_weights), sample_rate / 2
    low, high = htk_mel(low_hz), htk_mel(nyquist)
    out = []
    for k in range(n_bins):
        position = (htk_mel(k * nyquist / (n_bins - 1)) - low) / (high - low) * (n_mels + 1) - 1
        position = min(max(position, 0.0), n_mels - 1)
        below = math.floor(position)
        frac = position - below
        out.append(band_weights[below] * (1 - frac) + band_weights[min(below + 1, n_mels - 1)] * frac)
    return out


def cell_value(n_layers):
    """The one-tap decoder's value at the landed cell (dim 2): each layer sums 2 channels,
    each batch norm (all but the last layer) divides by sqrt(1 + eps)."""
    return 2.0**n_layers / (1 + 1e-5) ** ((n_layers - 1) / 2)


def lmac(decoder, embedding_model=None, mask_tail="zeros"):
    brain = bare_brain(
        LMAC,
        modules=torch.nn.ModuleDict({"psi": decoder}),
        embedding_model=embedding_model if embedding_model is not None else torch.nn.Identity(),
        mask_tail=mask_tail,
    )
    brain._warned_mask_tail = True  # the warning is another test's
    return brain


def interpret(brain, h, n_frames, n_bins):
    with torch.no_grad():
        return brain.interpret(torch.zeros(1, n_frames, n_bins), h, torch.tensor([0]), sb.Stage.TEST)


def test_hand_rule_matches_the_documented_sizes():
    """The hand rule itself, against the sizes the docstrings state."""
    assert hand_size((26, 32), CONV2D_STAGES, CONV2D_OUT) == (417, 513)
    assert hand_size((14, 14), VIT_STAGES, VIT_OUT) == (431, 513)
    assert hand_size((14, 14), GRID_STAGES, GRID_OUT) == (112, 112)
    assert hand_size((25, 12), GRID_STAGES, GRID_OUT) == (200, 96)


@pytest.mark.parametrize(
    "decoder, size, cell, stages, out_kernel",
    [
        (lambda: Conv2dMaskDecoder(dim=2, use_adapter=False), (5, 4), (1, 2), CONV2D_STAGES, CONV2D_OUT),
        (lambda: GridMaskDecoder(dim=2, use_adapter=False), (14, 14), (3, 5), VIT_STAGES, VIT_OUT),
        (lambda: GridMaskDecoder(dim=2, use_adapter=False, decoder="grid"), (14, 14), (4, 9), GRID_STAGES, GRID_OUT),
        (lambda: ASTGridMaskDecoder(dim=2, use_adapter=False), (25, 12), (2, 11), GRID_STAGES, GRID_OUT),
    ],
    ids=["conv2d", "vit_seed", "vit_grid", "ast"],
)
def test_one_hidden_cell_lands_on_one_hand_computed_cell(decoder, size, cell, stages, out_kernel):
    """Rows stay time and columns frequency through every stage; no axis is flipped."""
    decoder = one_tap(decoder())
    with torch.no_grad():
        logits = decoder(hidden_cell(2, size, cell))
    expected = hand_cell(cell, stages, out_kernel)
    assert logits.shape == (1, 1, *hand_size(size, stages, out_kernel))
    assert nonzero_cells(logits[0]) == [expected]
    # the transposed grid puts it elsewhere: the test tells them apart
    assert hand_cell(cell[::-1], stages, out_kernel) != expected


def test_conv2d_mask_is_cropped_or_zero_padded_to_the_input_frames():
    """Conv2d (no `spans_input`): logits 81 x 65 for a 5 x 4 map, the cell at (48, 16)
    (t: 1 -> 3 -> 8 -> 18 -> 38 -> 48; f: 2 -> 3 -> 5 -> 9 -> 17 -> 16); the sigmoid makes
    the mask 0.5 on the zero logits; 90 frames: rows 81-89 zeros (or the last row with
    mask_tail edge); 50 frames: the first 50 rows."""
    h = hidden_cell(2, (5, 4), (1, 2))
    brain = lmac(one_tap(Conv2dMaskDecoder(dim=2, use_adapter=False)))
    padded = interpret(brain, h, 90, 65)["mask"]
    assert padded.shape == (1, 90, 65)
    assert float(padded[0, 48, 16]) > 0.5 and float(padded[0, 48, 16]) <= 1.0
    rest = padded[0, :81].clone()
    rest[48, 16] = 0.5
    assert torch.all(rest == 0.5)
    assert torch.all(padded[0, 81:] == 0.0)
    edge = interpret(lmac(brain.modules["psi"], mask_tail="edge"), h, 90, 65)["mask"]
    assert torch.all(edge[0, 81:] == 0.5) and torch.equal(edge[0, :81], padded[0, :81])
    cropped = interpret(brain, h, 50, 65)["mask"]
    assert cropped.shape == (1, 50, 65) and torch.equal(cropped, padded[:, :50])
    with pytest.raises(ValueError, match="psi decodes 65 frequency bins but the STFT has 64"):
        interpret(brain, h, 90, 64)


@pytest.mark.parametrize("n_frames", [431, 259])
def test_vit_seed_mask_is_resized_onto_the_clip(n_frames):
    """ViT / FocalNet (`spans_input`, no grid_to_input): cell (3, 5) of the 14 x 14 grid lands
    on (126, 184) of 431 x 513 (t: 4t+1, 8t+4, 16t+10, 32t+22, 32t+30; f: 5f-1, 10f-3,
    20f-7, 40f-15, 40f-16); a 431-frame clip takes it as is,
    a 259-frame one through a bilinear resize of the time axis only."""
    backbone = types.SimpleNamespace(spans_input=True)
    brain = lmac(one_tap(GridMaskDecoder(dim=2, use_adapter=False)), backbone)
    outputs = interpret(brain, hidden_cell(2, (14, 14), (3, 5)), n_frames, 513)
    logits, mask = outputs["logits"], outputs["mask"]
    assert logits.shape == mask.shape == (1, n_frames, 513)
    rows = bilinear_weights(126, 431, n_frames)
    assert nonzero_cells(logits) == [(row, 184) for row in support(rows)]
    torch.testing.assert_close(logits[0, :, 184], cell_value(5) * torch.tensor(rows), rtol=1e-4, atol=1e-5)
    assert torch.all(mask[logits == 0] == 0.5) and torch.all(mask[logits > 0] >= 0.5)
    assert float(mask.max()) > 0.5 and float(mask.max()) <= 1.0


def test_vit_grid_decoder_is_resized_on_both_axes():
    """`decoder="grid"`: 8x the grid (112 x 112), cell (4, 9) -> (8t + 15, 8f - 8) = (47, 64),
    resized onto 259 x 513."""
    backbone = types.SimpleNamespace(spans_input=True)
    brain = lmac(one_tap(GridMaskDecoder(dim=2, use_adapter=False, decoder="grid")), backbone)
    logits = interpret(brain, hidden_cell(2, (14, 14), (4, 9)), 259, 513)["logits"]
    rows, columns = bilinear_weights(47, 112, 259), bilinear_weights(64, 112, 513)
    assert nonzero_cells(logits) == [(r, c) for r in support(rows) for c in support(columns)]
    expected = cell_value(4) * torch.tensor(rows)[:, None] * torch.tensor(columns)[None]
    torch.testing.assert_close(logits[0], expected, rtol=1e-4, atol=1e-5)


def test_ast_mask_goes_through_time_and_the_mel_axis():
    """AST: cell (time column 2, mel row 11, the top) -> (8t + 15, 8f - 8) = (31, 80) of
    200 x 96, resized to 259 frames x 128 mel bands, then each linear bin reads the bands at
    its place on the mel axis: early frames, high bins only."""
    backbone = types.SimpleNamespace(spans_input=True, config=types.SimpleNamespace(num_mel_bins=128), sample_rate=16000)
    backbone.grid_to_input = lambda decoded, n_frames, n_bins: AudioAST.grid_to_input(backbone, decoded, n_frames, n_bins)
    brain = lmac(one_tap(ASTGridMaskDecoder(dim=2, use_adapter=False)), backbone)
    outputs = interpret(brain, hidden_cell(2, (25, 12), (2, 11)), 259, 513)
    logits = outputs["logits"]
    assert logits.shape == outputs["mask"].shape == (1, 259, 513)
    rows = bilinear_weights(31, 200, 259)
    columns = mel_to_bins(bilinear_weights(80, 96, 128))
    assert nonzero_cells(logits) == [(r, c) for r in support(rows) for c in support(columns)]
    assert 35 <= support(rows)[0] and support(rows)[-1] <= 45 and support(columns)[0] > 300  # early, high
    expected = cell_value(4) * torch.tensor(rows)[:, None] * torch.tensor(columns)[None]
    torch.testing.assert_close(logits[0], expected, rtol=1e-4, atol=1e-5)


def test_decoders_adapter_is_applied_and_the_representation_checked():
    """use_adapter: x + BN(...) before the decoder; with the adapter's last norm's bias 1 (the
    rest zero) a zero map decodes like a map of ones: nonzero logits; without the adapter,
    zeros. The width check names the yaml key; an unknown decoder is refused."""
    with_adapter = one_tap(Conv2dMaskDecoder(dim=2, use_adapter=True))
    with torch.no_grad():
        for module in with_adapter.adapter.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
        with_adapter.adapter.block[4].bias.fill_(1.0)
        assert float(with_adapter(torch.zeros(1, 2, 5, 4)).abs().sum()) > 0
        assert float(one_tap(Conv2dMaskDecoder(dim=2, use_adapter=False))(torch.zeros(1, 2, 5, 4)).abs().sum()) == 0
    assert not hasattr(Conv2dMaskDecoder(dim=2, use_adapter=False), "adapter")
    for decoder in (Conv2dMaskDecoder(dim=4), GridMaskDecoder(dim=4), ASTGridMaskDecoder(dim=4)):
        with pytest.raises(ValueError, match=r"\(dim=4\) expects representations of shape \(B, 4, T', F'\), got \(1, 3, 14, 14\): set the yaml's emb_dim"):
            decoder(torch.zeros(1, 3, 14, 14))
        with pytest.raises(ValueError, match="got \\(4, 14, 14\\)"):
            decoder(torch.zeros(4, 14, 14))
    with pytest.raises(ValueError, match="decoder 'fine': choose one of"):
        GridMaskDecoder(dim=4, decoder="fine")


# ---------------------------------------------------------------------------
# data_prep/qt_rcc.py: archives written by hand
# ---------------------------------------------------------------------------


def name_table(names):
    """Qt's names: uint16 length in UTF-16 code units, uint32 hash, UTF-16 big-endian."""
    table, at = b"", {}
    for name in names:
        at[name] = len(table)
        encoded = name.encode("utf-16-be")
        table += struct.pack(">HI", len(encoded) // 2, 0x1234) + encoded
    return table, at


def rcc_bytes(version, nodes, data, names, data_last=False):
    """Header, tree, then data and names (names and data with `data_last`). `nodes`: tuples
    ("dir", name_at, count, first) or ("file", name_at, flags, data_at, language)."""
    stamp = struct.pack(">Q", 1_700_000_000_000) if version >= 2 else b""
    tree = b""
    for node in nodes:
        if node[0] == "dir":
            tree += struct.pack(">IHII", node[1], 0x02, node[2], node[3]) + stamp
        else:
            tree += struct.pack(">IHHHI", node[1], node[2], 0, node[4], node[3]) + stamp
    tree_at = 24 if version >= 3 else 20
    first, second = (names, data) if data_last else (data, names)
    second_at = tree_at + len(tree) + len(first)
    data_at, names_at = (second_at, tree_at + len(tree)) if data_last else (tree_at + len(tree), second_at)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree + first + second


def stored(payload):
    return struct.pack(">I", len(payload)) + payload


def q_compress(content):
    """qCompress: uint32 big-endian length, then the zlib stream."""
    return stored(struct.pack(">I", len(content)) + zlib.compress(content))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_unicode_names_nested_folders_and_locales(version):
    """Names in UTF-16 (a surrogate pair counts 2 code units), paths through two folders, and
    a file present in two languages: listed once, the first node's bytes."""
    cow = "vache \u00e9t\u00e9 \U0001f404.ogg"  # the emoji is 2 UTF-16 code units
    names, at = name_table(["sons", "ferme", cow, "a.txt"])
    data = stored(b"MOO") + stored(b"english") + stored(b"french")
    nodes = [
        ("dir", 0, 3, 1),  # root: nodes 1-3
        ("dir", at["sons"], 1, 4),
        ("file", at["a.txt"], 0, 7, 0),  # "english" at data offset 7
        ("file", at["a.txt"], 0, 18, 31),  # "french": same path, another language
        ("dir", at["ferme"], 1, 5),
        ("file", at[cow], 0, 0, 0),
    ]
    archive = RccArchive(rcc_bytes(version, nodes, data, names), "u.rcc")
    assert archive.names() == ["a.txt", f"sons/ferme/{cow}"]
    assert archive.read(f"sons/ferme/{cow}") == b"MOO"
    assert archive.read("a.txt") == b"english"


def test_rcc_compressed_entry_checks_its_length_and_stream():
    names, at = name_table(["z.txt", "bad.txt", "short.txt"])
    text = b"la la la " * 20
    good = q_compress(text)
    lying = stored(struct.pack(">I", len(text) + 1) + zlib.compress(text))
    corrupt = stored(struct.pack(">I", len(text)) + zlib.compress(text)[:-6] + b"\x00" * 6)
    data = good + lying + corrupt
    nodes = [
        ("dir", 0, 3, 1),
        ("file", at["z.txt"], 0x01, 0, 0),
        ("file", at["bad.txt"], 0x01, len(good), 0),
        ("file", at["short.txt"], 0x01, len(good) + len(lying), 0),
    ]
    archive = RccArchive(rcc_bytes(2, nodes, data, names), "c.rcc")
    assert archive.read("z.txt") == text
    with pytest.raises(ValueError, match=f"c.rcc: bad.txt decompresses to {len(text)} bytes, not {len(text) + 1}"):
        archive.read("bad.txt")
    # a damaged stream: a ValueError naming the archive and the file (what the fetcher reports)
    with pytest.raises(ValueError, match="c.rcc: short.txt"):
        archive.read("short.txt")


def test_rcc_zstd_entry_hands_the_frame_to_zstandard(monkeypatch):
    """Flag 4: the payload after the uint32 size is the zstd frame (a stand-in module records it)."""
    frames = []

    class Decompressor:
        def decompressobj(self):
            return types.SimpleNamespace(decompress=lambda frame: frames.append(frame) or b"decoded")

    monkeypatch.setitem(sys.modules, "zstandard", types.SimpleNamespace(ZstdDecompressor=Decompressor))
    names, at = name_table(["s.wav"])
    archive = RccArchive(rcc_bytes(3, [("dir", 0, 1, 1), ("file", at["s.wav"], 0x04, 0, 0)], stored(b"\x28\xb5\x2f\xfdFRAME"), names))
    assert archive.read("s.wav") == b"decoded" and frames == [b"\x28\xb5\x2f\xfdFRAME"]


def test_rcc_truncated_or_corrupt_archives_fail_clearly():
    """Never a short file: data cut at its end, a name past the end, a tree that loops, a
    folder claiming more children than the file holds."""
    names, at = name_table(["x.wav"])
    whole = rcc_bytes(1, [("dir", 0, 1, 1), ("file", at["x.wav"], 0, 0, 0)], stored(b"RIFF" * 10), names, data_last=True)
    assert RccArchive(whole).read("x.wav") == b"RIFF" * 10
    cut = RccArchive(whole[:-3], "cut.rcc")  # the tree and names are whole: only the data is short
    with pytest.raises(ValueError, match=r"cut.rcc is truncated or corrupt: it points past its end \(\d+ > \d+ bytes\)"):
        cut.read("x.wav")
    with pytest.raises(ValueError, match="n.rcc is truncated or corrupt"):
        RccArchive(rcc_bytes(1, [("dir", 0, 1, 1), ("file", 999, 0, 0, 0)], stored(b"a"), names), "n.rcc")
    long_name = struct.pack(">HI", 50, 0) + "x.wav".encode("utf-16-be")  # 50 code units claimed, 5 there
    with pytest.raises(ValueError, match="m.rcc is truncated or corrupt"):
        RccArchive(rcc_bytes(1, [("dir", 0, 1, 1), ("file", 0, 0, 0, 0)], stored(b"a"), long_name), "m.rcc")
    with pytest.raises(ValueError, match="l.rcc is corrupt: its tree loops through node 0"):
        RccArchive(rcc_bytes(2, [("dir", 0, 1, 0)], b"", names), "l.rcc")
    with pytest.raises(ValueError, match="h.rcc is truncated or corrupt"):
        RccArchive(rcc_bytes(2, [("dir", 0, 0xFFFFFFFF, 1)], b"", names), "h.rcc")
    lone_surrogate = struct.pack(">HI", 1, 0) + b"\xd8\x00"  # half of a UTF-16 pair
    with pytest.raises(ValueError, match="s.rcc is corrupt: a name at byte .* is not UTF-16"):
        RccArchive(rcc_bytes(1, [("dir", 0, 1, 1), ("file", 0, 0, 0, 0)], stored(b"a"), lone_surrogate), "s.rcc")
    with pytest.raises(ValueError, match="e.rcc is not a Qt resource archive"):
        RccArchive(b"", "e.rcc")
    with pytest.raises(ValueError, match="q.rcc is truncated or corrupt"):
        RccArchive(b"qres\x00\x00\x00\x01", "q.rcc")


# ---------------------------------------------------------------------------
# recipes/interpreters/training.py
# ---------------------------------------------------------------------------


class FlowBrain:
    """Records the flow's calls."""

    def __init__(self, calls, output_folder):
        self.calls = calls
        self.hparams = types.SimpleNamespace(output_folder=output_folder)

    def evaluate(self, test_set, **kwargs):
        self.calls.append(("evaluate", test_set, kwargs))

    def export_interpreter(self, folder):
        self.calls.append(("export", folder))


def test_train_interpreter_runs_data_brain_fit_test_export_in_order(tmp_path, monkeypatch):
    calls = []
    brain = FlowBrain(calls, str(tmp_path))
    hparams = {"test_dataloader_opts": {"batch_size": 3}}
    datasets = {"train": "TRAIN", "valid": "VALID", "test": "TEST"}

    def prepare_run(argv, recipe_file=None):
        calls.append(("prepare", argv, recipe_file))
        return hparams, {"device": "cpu"}, None, None, datasets, "ENCODER"

    def build_brain(brain_class, hparams_, run_opts, **kwargs):
        calls.append(("build", brain_class, hparams_ is hparams, run_opts, kwargs))
        return brain

    monkeypatch.setattr(training, "prepare_run", prepare_run)
    monkeypatch.setattr(training, "build_brain", build_brain)
    monkeypatch.setattr(training, "fit_interpreter", lambda b, h, d: calls.append(("fit", b is brain, h is hparams, d is datasets)))
    monkeypatch.setattr(training, "export_inference", lambda b, folder: calls.append(("inference", folder)) or folder)
    returned = training.train_interpreter(LMAC, ["x.yaml", "--lr", "1"], recipe_file="recipes/train_lmac.py")
    assert returned is brain
    assert calls == [
        ("prepare", ["x.yaml", "--lr", "1"], "recipes/train_lmac.py"),
        ("build", LMAC, True, {"device": "cpu"}, {"label_encoder": "ENCODER"}),
        ("fit", True, True, True),
        ("evaluate", "TEST", {"test_loader_kwargs": {"batch_size": 3}}),
        ("export", str(tmp_path)),
        ("inference", str(tmp_path / "inference")),
    ]


def test_export_trained_writes_only_on_the_main_process(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(training, "export_inference", lambda b, folder: calls.append(("inference", folder)) or folder)
    monkeypatch.setattr(sb.utils.distributed, "if_main_process", lambda: False)
    assert training.export_trained(FlowBrain(calls, str(tmp_path))) is None and calls == []
    monkeypatch.setattr(sb.utils.distributed, "if_main_process", lambda: True)
    assert training.export_trained(FlowBrain(calls, str(tmp_path))) == str(tmp_path / "inference")
    assert calls == [("export", str(tmp_path)), ("inference", str(tmp_path / "inference"))]


def test_a_classifier_map_of_another_downsampling_is_named_as_the_cause():
    """Guards the message of `LMAC.interpret`: a classifier whose map is 8x smaller than X
    (64 rows for 513 bins), at n_fft 1024, was told to use n_fft 1024."""
    import types

    from recipes.interpreters.lmac import LMAC

    fake = types.SimpleNamespace(
        modules=types.SimpleNamespace(psi=Conv2dMaskDecoder(dim=8)),
        hparams=types.SimpleNamespace(embedding_model=torch.nn.Identity()),
    )
    with pytest.raises(ValueError, match="decodes 1025 frequency bins but the STFT has 513.*this classifier's map has 64 rows for 513 bins"):
        LMAC.interpret(fake, torch.rand(1, 259, 513), torch.rand(1, 8, 32, 64), None, None)


def test_a_cnn14_classifier_shrunk_below_emb_dim_2048_is_named():
    """Guards the CNN14 check of `LMAC.interpret` (`check_cnn14_reps`): speechbrain's Cnn14 at
    emb_dim 32 gives (32, 1024, 512, 256) channels, which CNN14PSI_stft(dim=32) cannot read;
    was a raw "expected input ... to have 16 channels" from a transposed convolution."""
    import types

    from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft

    from recipes.interpreters.lmac import LMAC

    fake = types.SimpleNamespace(
        modules=types.SimpleNamespace(psi=CNN14PSI_stft(dim=32, outdim=1)),
        hparams=types.SimpleNamespace(embedding_model=torch.nn.Identity()),
    )
    reps = [torch.rand(1, channels, 4, 2) for channels in (32, 1024, 512, 256)]
    with pytest.raises(ValueError, match=r"got \(32, 1024, 512, 256\): the CNN14 interpreters need speechbrain's Cnn14 at emb_dim 2048"):
        LMAC.interpret(fake, torch.rand(1, 201, 513), reps, None, None)
