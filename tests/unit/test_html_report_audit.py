"""Mutation audit of recipes/reporting/html_report.py and recipes/report.py: the HTML report.

Two eval folders are written here in the layout recipes/eval.py writes (metrics.json with
"methods", "references", "intervals", "classifier_check", "by_class", "curves",
"sanity_check" and "clips" whose paths are relative to the eval folder), with real files
behind every link (PNGs made with zlib, wavs with the wave module). Names carry HTML and URL
specials: a clip id `a<b>&"#?% é` (its file names too), a class `<script>alert(1)</script>`,
a masked top class `<i>dog</i>`, a step `<conv>`, a title `Lab <report> & co`.

The page is read back with the stdlib's html.parser (`_Page`: the tables cell by cell, `<br>`
as a newline; every element's text; every tag). Expected cells are worked out by hand from the
values in the fixtures: format_value gives 3 decimals below 10 and 1 from 10 up, ± is half the
interval (PIQ Fid-In 0.8..1.0 -> 0.100, AD 10..16 -> 3.000), Kendall's tau-b over the three
ranked methods (PIQ, its random mask, saliency) is 1 where two metrics order them the same and
(2 concordant - 1 discordant) / 3 = 0.33 where AD puts saliency first. Links are resolved
with urllib.parse.unquote against the report folder, after moving the whole tree elsewhere
too. Each test names the mutations of the audit (M1, M2, ...) it catches.
"""

import json
import os
import shutil
import struct
import urllib.parse
import wave
import zlib
from html.parser import HTMLParser

import pytest

from recipes import report
from recipes.reporting import html_report

CLIP_ID = 'a<b>&"#?% é'  # HTML and URL specials, in the clip's file names too
SCRIPT_CLASS = "<script>alert(1)</script>"
TITLE = "Lab <report> & co"

PIQ_METHODS = {
    "PIQ": {"fid_in": 0.9, "AD": 12.5, "si_sdri": 4.0, "gt_precision": 0.8, "loss_vq": 0.25, "loss": 9.0},
    "random": {"fid_in": 0.5, "AD": 40.0, "si_sdri": -3.0, "gt_precision": 0.3},
    "saliency": {"fid_in": 0.7, "AD": 10.0, "si_sdri": 1.0, "gt_precision": 0.5},
}
SANITY = {
    "clips": 2,
    "steps": ["none", "classifier", "<conv>"],
    "class_kept": [1.0, 0.5, 0.0],
    "methods": {
        "PIQ": {"spearman": [1.0, 0.4, 0.1], "ssim": [1.0, 0.6, 0.2]},
        "saliency": {"spearman": [1.0, 0.97, 0.95], "ssim": [1.0, 0.98, 0.96]},
    },
    "failed": ["saliency"],
    "max_similarity": 0.9,
    "png": "sanity_check.png",
}


# --- real files ------------------------------------------------------------------------------


def _png(path, width=2, height=1):
    """A real (tiny, grey) PNG."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fout:
        fout.write(data)


def _wav(path):
    """A real 16-bit mono wav of 10 samples."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as fout:
        fout.setnchannels(1)
        fout.setsampwidth(2)
        fout.setframerate(16000)
        fout.writeframes(struct.pack("<10h", *range(10)))


def _piq_evaluation(folder):
    """The in-distribution PIQ evaluation: every section of the report, real files behind links."""
    clips = [
        {
            "id": CLIP_ID,
            "class": SCRIPT_CLASS,
            "true_class": SCRIPT_CLASS,  # predicted right: no "true:" line
            "probability": 0.876,
            "png": f"clips/{CLIP_ID}.png",
            "original": f"clips/{CLIP_ID}_original.wav",
            "interpretation": f"clips/{CLIP_ID}_interpretation.wav",
            "target": f"clips/{CLIP_ID}_target.wav",
        },
        {
            "id": "1-200-A-3",
            "class": "cat",
            "true_class": "<b>dog</b>",
            "probability": 0.5,
            "png": "clips/1-200-A-3.png",
            "original": "clips/1-200-A-3_original.wav",
            "interpretation": "clips/1-200-A-3_interpretation.wav",
        },
    ]
    for clip in clips:
        _png(os.path.join(folder, clip["png"]))
        for key in ("original", "interpretation", "target"):
            if key in clip:
                _wav(os.path.join(folder, clip[key]))
    _png(os.path.join(folder, "curves.png"))
    _png(os.path.join(folder, "sanity_check.png"))
    return {
        "interpreter": "PIQ",
        "hparams_file": "/h/piq.yaml",
        "pretrained_interpreter": "/m/<psi>.ckpt",
        "data_folder": "/data",
        "overlap_type": "none",
        "wham_noise": False,
        "n_clips": 3,
        "seed": 1,
        "classifier": {"embedding_model": "e.ckpt", "classifier_model": "c.ckpt"},
        "classifier_accuracy": 0.875,
        "ground_truth": True,
        "methods": PIQ_METHODS,
        "references": {
            "all_ones": {"fid_in": 1.0, "si_sdri": 0.0, "gt_precision": 0.25},
            "ground_truth": {"fid_in": 0.95, "si_sdri": 25.0, "gt_precision": 1.0},
        },
        "intervals": {
            "PIQ": {"fid_in": {"low": 0.8, "high": 1.0}, "AD": {"low": 10.0, "high": 16.0}},
            "ground_truth": {"AD": {"low": 1.0, "high": 2.0}},  # no AD value: no ±
        },
        "classifier_check": {
            "accuracy": 0.875,
            "masked_top_class": "<i>dog</i>",
            "masked_top_class_share": 0.9,
            "masked_predictions": 10,
            "masked_methods": ["PIQ", "saliency", "ground_truth"],
        },
        "n_undefined": {"PIQ": {"si_sdri": 1}},
        "by_class": {
            "dog": {"n": 2, "PIQ": {"si_sdri": 5.0}},
            "<u>cat</u>": {"n": 1, "PIQ": {"si_sdri": -1.0}},
        },
        "curves": {"png": "curves.png", "deletion_value": "noise_floor"},
        "sanity_check": SANITY,
        "clips": clips,
    }


def _l2i_mixtures_evaluation():
    """An out-of-distribution L2I evaluation: no clips, no curves, a classifier check without warning;
    one metric ranks its three methods (no agreement to show)."""
    return {
        "interpreter": "L2I",
        "data_folder": "/data",
        "overlap_type": "mixtures",
        "wham_noise": False,
        "n_clips": 3,
        "seed": 1,
        "classifier": {"embedding_model": "e.ckpt", "classifier_model": "c.ckpt"},
        "classifier_accuracy": 0.5,
        "ground_truth": False,
        "methods": {"L2I": {"fid_in": 0.6}, "random": {"fid_in": 0.2}, "saliency": {"fid_in": 0.4}},
        "references": {"all_ones": {"fid_in": 1.0}},
        "classifier_check": {
            "accuracy": 0.5,
            "masked_top_class": "cat",
            "masked_top_class_share": 0.3,
            "masked_predictions": 4,
        },
        "clips": [],
    }


def _write_json(data, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(data, fout)


@pytest.fixture
def tree(tmp_path):
    """root/evals/piq, root/evals/l2i_mix (eval folders); the report goes to root/report."""
    root = tmp_path / "root"
    piq, l2i = root / "evals" / "piq", root / "evals" / "l2i_mix"
    _write_json(_piq_evaluation(str(piq)), str(piq / "metrics.json"))
    _write_json(_l2i_mixtures_evaluation(), str(l2i / "metrics.json"))
    return root, [str(piq), str(l2i)]


# --- an independent reading of the page --------------------------------------------------------

VOID = {"meta", "br", "img", "link", "hr", "input"}


class _Page(HTMLParser):
    """Every tag, every element's text (document order) and the tables' cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []  # (tag, attrs)
        self.elements = []  # {"tag", "attrs", "text"} in document order
        self.open = []  # indices into elements
        self.tables = []  # {"attrs", "rows": [[cell]]}; cell {"tag", "attrs", "text", "children"}
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "br":
            self._data("\n")
            return
        if tag == "table":
            self.tables.append({"attrs": attrs, "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self.cell = {"tag": tag, "attrs": attrs, "text": "", "children": []}
            self.tables[-1]["rows"][-1].append(self.cell)
        elif self.cell is not None:
            self.cell["children"].append((tag, attrs))
        if tag not in VOID:
            self.elements.append({"tag": tag, "attrs": attrs, "text": ""})
            self.open.append(len(self.elements) - 1)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cell = None
        for k in range(len(self.open) - 1, -1, -1):
            if self.elements[self.open[k]]["tag"] == tag:
                del self.open[k:]
                break

    def _data(self, data):
        for index in self.open:
            self.elements[index]["text"] += data
        if self.cell is not None:
            self.cell["text"] += data

    def handle_data(self, data):
        self._data(data)

    def texts(self, tag, css=None):
        return [
            e["text"] for e in self.elements if e["tag"] == tag and (css is None or e["attrs"].get("class") == css)
        ]

    def table(self, css):
        (found,) = [t for t in self.tables if t["attrs"].get("class") == css]
        return found


def _parse(path):
    page = _Page()
    with open(path, encoding="utf-8") as fin:
        page.feed(fin.read())
    page.close()
    return page


def _texts(row):
    return [cell["text"] for cell in row]


def _target(report_folder, src):
    """The file a relative link points to (what a browser opens)."""
    parts = urllib.parse.urlsplit(src)
    assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", ""), src
    assert not src.startswith("/"), src
    return os.path.normpath(os.path.join(report_folder, urllib.parse.unquote(parts.path)))


@pytest.fixture
def page(tree):
    root, folders = tree
    path = html_report.write_report(folders, str(root / "report"), TITLE)
    return root, folders, path, _parse(path)


# --- the summary table ---------------------------------------------------------------------------


def test_summary_table_cells_rows_and_order(page):
    """M1 (± on a "-" cell), M2 (± never shown), M3 (± repeating the value, not half the
    interval), M4 (another text as the row label), M5 (class "interpreter" on every row), M6
    (rows reversed), M7 (no title on an unknown metric's column), M8 (columns sorted by key, not
    in METRICS order), M63 (a definition looked up for an unknown metric: KeyError)."""
    _, _, _, parsed = page
    table = parsed.table("summary")
    header, *rows = table["rows"]
    assert _texts(header) == ["method", "Fid-In", "AD %", "SI-SDRi dB", "GT precision", "loss_vq"]
    assert header[1]["attrs"]["title"] == (
        "share of clips whose predicted class on the interpretation is the class on the input (higher is better)"
    )
    assert header[5]["attrs"]["title"] == "loss_vq"
    assert [_texts(row) for row in rows] == [
        ["PIQ", "0.900\n± 0.100", "12.5\n± 3.000", "4.000", "0.800", "0.250"],
        ["PIQ: random mask", "0.500", "40.0", "-3.000", "0.300", "-"],
        ["L2I [mixtures]", "0.600", "-", "-", "-", "-"],
        ["L2I [mixtures]: random mask", "0.200", "-", "-", "-", "-"],
        ["saliency (captum)", "0.700", "10.0", "1.000", "0.500", "-"],
        ["all ones", "1.000", "-", "0.000", "0.250", "-"],
        ["ground truth", "0.950", "-", "25.0", "1.000", "-"],
        ["saliency (captum) [mixtures]", "0.400", "-", "-", "-", "-"],
        ["all ones [mixtures]", "1.000", "-", "-", "-", "-"],
    ]
    # the ± is its own span; the row's kind is its css class (bold interpreters, italic references)
    assert rows[0][1]["children"] == [("span", {"class": "ci"})]
    assert rows[6][2]["children"] == []
    kinds = [parsed.tags[i][1].get("class") for i in range(len(parsed.tags)) if parsed.tags[i][0] == "tr"]
    summary_start = kinds.index(None)  # the header row has no class; summary rows follow
    assert kinds[summary_start + 1 : summary_start + 10] == [
        "interpreter",
        None,
        "interpreter",
        None,
        None,
        "reference",
        "reference",
        None,
        "reference",
    ]
    definitions = parsed.texts("dt")
    assert definitions == ["Fid-In", "AD %", "SI-SDRi dB", "GT precision"]  # loss_vq: no definition


def test_agreement_section_tau_matrix_and_line(page):
    """M9 (the tau of another pair), M10 (the row titles in another order), M11 (a matrix for a
    group with one metric: the L2I [mixtures] group), M12 (metrics counted as methods in the
    heading), M13 (the agreement line dropped)."""
    _, _, _, parsed = page
    tables = [t for t in parsed.tables if t["rows"] and t["rows"][0] and t["rows"][0][0]["text"] == "Kendall τ"]
    assert len(tables) == 1  # the mixtures group has 2 methods: no ranking, no section
    header, *rows = tables[0]["rows"]
    assert _texts(header) == ["Kendall τ", "Fid-In", "AD %", "SI-SDRi dB", "GT precision"]
    assert [_texts(row) for row in rows] == [
        ["Fid-In", "1.00", "0.33", "1.00", "1.00"],
        ["AD %", "0.33", "1.00", "0.33", "0.33"],
        ["SI-SDRi dB", "1.00", "0.33", "1.00", "1.00"],
        ["GT precision", "1.00", "0.33", "1.00", "1.00"],
    ]
    assert "clips as they are: 3 methods" in parsed.texts("h3")
    assert (
        "Kendall τ of each metric's method ranking with GT precision's (the ground truth): "
        "SI-SDRi dB +1.00, Fid-In +1.00, AD % +0.33." in parsed.texts("p")
    )


# --- one evaluation's section ------------------------------------------------------------------


def test_evaluation_meta_check_and_warnings(page):
    """M14 (accuracy not in %), M15 (ground truth yes / no swapped), M16 (interpreter path
    unescaped), M17 (the undefined line dropped), M18 (check lines unescaped), M19 (no warning on
    top), M19e (the top warning unescaped), M20 (the evaluations' sections reversed), M21 ("No
    clip shown" for the evaluation with clips), M22 / M43d (the title unescaped), M57 (n_clips
    dropped), M58 (no warning in the evaluation's own section)."""
    _, _, _, parsed = page
    assert parsed.texts("title") == [TITLE] and parsed.texts("h1") == [TITLE]
    assert parsed.texts("h2") == ["Summary", "Do the metrics agree?", "PIQ", "L2I [mixtures]"]
    meta = parsed.texts("p", "meta")
    assert "3 clips, classifier accuracy 87.5 %, ground truth: yes; interpreter /m/<psi>.ckpt, yaml /h/piq.yaml" in meta
    assert "3 clips, classifier accuracy 50.0 %, ground truth: no; interpreter , yaml " in meta
    assert "undefined values, left out of the means (clips): PIQ: si_sdri 1" in meta
    assert parsed.texts("li") == [
        "accuracy on the evaluated clips: 87.5 %",
        "most frequent class on masked inputs: '<i>dog</i>', 90.0 % of 10 predictions "
        "(PIQ, saliency and ground-truth masks)",
        "accuracy on the evaluated clips: 50.0 %",
        # a metrics.json from before "masked_methods": the masks are not named
        "most frequent class on masked inputs: 'cat', 30.0 % of 4 predictions",
    ]
    reason = (
        "masked-input metrics (Fid-In, AI, AD, AG) are not informative for this classifier: 90 % of its "
        "predictions on masked inputs (9 of 10, PIQ, saliency and ground-truth masks) are class "
        "'<i>dog</i>' (more than half)."
    )
    warnings = parsed.texts("p", "warning")
    # on top (before the summary), in PIQ's section, and the sanity check's failure
    assert warnings[:2] == [f"Warning (PIQ): {reason}", f"Warning: {reason}"]
    summary = next(i for i, e in enumerate(parsed.elements) if e["tag"] == "h2")
    first_warning = next(i for i, e in enumerate(parsed.elements) if e["attrs"].get("class") == "warning")
    assert first_warning < summary
    assert "No clip shown (--n_report_clips 0)." in parsed.texts("p")
    assert parsed.texts("p").count("No clip shown (--n_report_clips 0).") == 1


def test_by_class_table_worst_first_escaped(page):
    """M23 (cells unescaped), M24 (the header row dropped)."""
    _, _, _, parsed = page
    table = parsed.table("by-class")
    assert [_texts(row) for row in table["rows"]] == [
        ["true class", "clips", "PIQ SI-SDRi dB"],
        ["<u>cat</u>", "1", "-1.000"],
        ["dog", "2", "5.000"],
    ]


def test_clip_rows_link_each_file_to_its_column(page):
    """M25 (original and interpretation swapped), M26 (no "-" cell where a clip has no target),
    M27 (colspan 4 with a target column), M28 (probability with 3 decimals), M29 ("true:" shown
    for a right prediction), M29e ("true:" class unescaped), M30 (every row shows the first
    clip's PNG), M31 (" / target event" in the alt of a clip without one), M31e / M43b / M43c (id
    or class unescaped), M55 (the "-" of a missing file dropped), M56 (target column only when
    every clip has one), M65 (the players preload the audio)."""
    root, folders, path, parsed = page
    report_folder = os.path.dirname(path)
    piq = folders[0]
    header, *rows = parsed.table("clips")["rows"]
    assert _texts(header) == ["clip", "predicted class (p)", "original", "interpretation", "target event"]
    assert len(rows) == 4  # per clip: the players' row, then the spectrograms' row
    first, first_png, second, second_png = rows
    assert _texts(first)[:2] == [CLIP_ID, f"{SCRIPT_CLASS} (0.88)"]
    assert _texts(second)[:2] == ["1-200-A-3", "cat (0.50)\ntrue: <b>dog</b>"]

    def audio(cell):
        (child,) = cell["children"]
        assert child[0] == "audio" and child[1]["preload"] == "none" and "controls" in child[1]
        return _target(report_folder, child[1]["src"])

    clip = os.path.join(piq, "clips")
    assert [audio(cell) for cell in first[2:]] == [
        os.path.join(clip, f"{CLIP_ID}_original.wav"),
        os.path.join(clip, f"{CLIP_ID}_interpretation.wav"),
        os.path.join(clip, f"{CLIP_ID}_target.wav"),
    ]
    assert [audio(cell) for cell in second[2:4]] == [
        os.path.join(clip, "1-200-A-3_original.wav"),
        os.path.join(clip, "1-200-A-3_interpretation.wav"),
    ]
    assert second[4]["text"] == "-" and second[4]["children"] == []
    for row, clip_id, shown in (
        (first_png, CLIP_ID, "input / mask / interpretation / target event"),
        (second_png, "1-200-A-3", "input / mask / interpretation"),
    ):
        (cell,) = row
        assert cell["attrs"]["colspan"] == "5"
        ((tag, attrs),) = cell["children"]
        assert tag == "img" and attrs["alt"] == f"{shown} spectrograms of {clip_id}"
        assert _target(report_folder, attrs["src"]) == os.path.join(clip, f"{clip_id}.png")


def test_links_are_relative_quoted_and_survive_a_move(page, tmp_path):
    """M32 (links not quoted: '#' starts a fragment, '?' a query), M33 (absolute links: broken
    once the tree moves), M34 (audio relative to the eval folder, not the report); every src is a
    file that exists, before and after the move. (Replacing os.sep by "/" cannot be told apart
    on POSIX.)"""
    root, folders, path, parsed = page
    srcs = [attrs["src"] for tag, attrs in parsed.tags if tag in ("img", "audio")]
    assert len(srcs) == (1 + 3) + (1 + 2) + 1 + 1  # the clips' PNG and wavs, curves, sanity check
    assert srcs[0] == "../evals/piq/curves.png"
    assert "../evals/piq/clips/a%3Cb%3E%26%22%23%3F%25%20%C3%A9.png" in srcs
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(str(root), str(moved))
    report_folder = str(moved / "report")
    moved_page = _parse(os.path.join(report_folder, "index.html"))
    for tag, attrs in moved_page.tags:
        if tag in ("img", "audio"):
            assert os.path.isfile(_target(report_folder, attrs["src"])), attrs["src"]


def test_curves_and_sanity_sections(page):
    """M36 (the deletion value not shown), M37 (Spearman and SSIM swapped), M38 (FAILED on the
    method that passed), M39 (the class-kept row empty), M40 (another threshold in the verdict),
    M40b (the failed method by its key, not its label), M43a (a step unescaped), M61 (the sanity
    PNG linked relative to the eval folder), M58 (the warnings' order)."""
    root, folders, path, parsed = page
    report_folder = os.path.dirname(path)
    assert (
        "Deletion and insertion curves (removed bins set to noise_floor; mean over the clips):" in parsed.texts("p")
    )
    imgs = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert imgs[0]["alt"] == "mean deletion and insertion curves"
    assert _target(report_folder, imgs[1]["src"]) == os.path.join(folders[0], "sanity_check.png")
    assert "Sanity check: cumulative classifier randomisation, top layer first (2 clips)" in parsed.texts("h3")
    (table,) = [t for t in parsed.tables if t["rows"][0][0]["text"] == "method" and t["attrs"] == {}]
    assert [_texts(row) for row in table["rows"]] == [
        ["method", "none", "classifier", "<conv>"],
        ["PIQ", "ρ 1.000\nSSIM 1.000", "ρ 0.400\nSSIM 0.600", "ρ 0.100\nSSIM 0.200"],
        [
            "saliency (captum) (FAILED: the mask did not change)",
            "ρ 1.000\nSSIM 1.000",
            "ρ 0.970\nSSIM 0.980",
            "ρ 0.950\nSSIM 0.960",
        ],
        ["class kept (share of clips)", "1.000", "0.500", "0.000"],
    ]
    assert parsed.texts("p", "warning")[2] == (
        "Sanity check failed for saliency (captum): with the whole classifier randomised, the mask "
        "stays the same (Spearman and SSIM with the original ≥ 0.9); it does not depend on what the "
        "classifier learned."
    )


def test_sanity_check_passed_without_png():
    """M38 (FAILED on a method that passed), M41 (the failed verdict for a passed check),
    M42 (an img with src="None" when there is no PNG)."""
    passed = {**SANITY, "failed": []}
    parsed = _Page()
    parsed.feed(html_report.sanity_html(passed))
    assert parsed.texts("p") == [
        "Sanity check passed: every method's mask changed when the classifier was randomised."
    ]
    assert not [tag for tag, _ in parsed.tags if tag == "img"]
    assert "FAILED" not in "".join(parsed.texts("td"))


def test_no_name_becomes_markup(page):
    """M16, M18, M19e, M22, M23, M29e, M31e, M43a-d (any html.escape dropped: a clip id, a
    class, the masked top class, a step, a by-class label, the interpreter path or the title
    becomes a tag, or an attribute ends at the id's quote), M64 (the generator tag dropped); the
    page has no script and nothing from outside."""
    _, _, path, parsed = page
    allowed = {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "strong", "div",
        "table", "tr", "th", "td", "span", "br", "details", "summary", "dl", "dt", "dd", "ul",
        "li", "img", "audio",
    }  # fmt: skip
    assert {tag for tag, _ in parsed.tags} <= allowed
    for tag, attrs in parsed.tags:
        assert set(attrs) <= {"lang", "charset", "name", "content", "class", "title", "colspan", "src", "alt",
                              "controls", "preload"}, (tag, attrs)  # fmt: skip
    generator = [attrs for tag, attrs in parsed.tags if tag == "meta" and attrs.get("name") == "generator"]
    assert generator == [{"name": "generator", "content": "audio-interpret report"}]


# --- files: atomic, the user's page kept, clear errors ---------------------------------------


def test_rewrites_its_own_page_and_leaves_no_partial(tree):
    """M44 (its own page refused), M45 (a page from before the generator tag refused), M45b (a
    page with the generator tag but another style refused), M54 (too little of the page read to
    find the tag), M62 (an empty "Do the metrics agree?" section); no temporary file is left."""
    root, folders = tree
    report_folder = root / "report"
    first = html_report.write_report(folders, str(report_folder))
    second = html_report.write_report(folders[:1], str(report_folder))
    assert first == second == str(report_folder / "index.html")
    assert os.listdir(report_folder) == ["index.html"]
    assert _parse(second).texts("h2")[-1] == "PIQ"  # the second, with one evaluation
    legacy = f"<html><head><style>{html_report.STYLE}</style></head><body>old</body></html>"
    (report_folder / "index.html").write_text(legacy, encoding="utf-8")
    html_report.write_report(folders[1:], str(report_folder))
    # one metric only: no "Do the metrics agree?" section
    assert _parse(report_folder / "index.html").texts("h2") == ["Summary", "L2I [mixtures]"]
    tagged = f'<html><head><meta name="generator" content="{html_report.GENERATOR}"></head></html>'
    (report_folder / "index.html").write_text(tagged, encoding="utf-8")  # a page without STYLE
    html_report.write_report(folders[:1], str(report_folder))
    assert _parse(report_folder / "index.html").texts("h2")[-1] == "PIQ"


@pytest.mark.parametrize("kind", ["page", "folder"])
def test_never_replaces_what_the_user_has_there(tree, kind):
    """M47 (the check dropped), M48 (an unreadable index.html, here a folder, taken as the
    project's)."""
    root, folders = tree
    site = root / "site"
    site.mkdir()
    if kind == "page":
        (site / "index.html").write_bytes(b"<html><title>my lab</title></html>")
    else:
        (site / "index.html").mkdir()
    with pytest.raises(ValueError, match="is already there and is not a report of this project"):
        report.main([*folders, "--out", str(site)])
    if kind == "page":
        assert (site / "index.html").read_bytes() == b"<html><title>my lab</title></html>"
    assert sorted(os.listdir(site)) == ["index.html"]


def test_a_failed_report_keeps_the_previous_page(tree):
    """M46 (the page opened for writing before it is rendered: a clip the page cannot render
    leaves an empty file), M49 (the report folder made before the evaluations are read), M59 (the
    error does not say what to run): the previous page is kept byte for byte, no partial file."""
    root, folders = tree
    report_folder = root / "report"
    missing = root / "evals" / "never_run"
    with pytest.raises(FileNotFoundError, match=r"metrics.json does not exist: run recipes/eval.py"):
        html_report.write_report([folders[0], str(missing)], str(report_folder))
    assert not report_folder.exists()
    html_report.write_report(folders, str(report_folder))
    before = (report_folder / "index.html").read_bytes()
    broken = _piq_evaluation(folders[0])
    del broken["clips"][1]["png"]
    _write_json(broken, os.path.join(folders[0], "metrics.json"))
    with pytest.raises(KeyError):
        html_report.write_report(folders, str(report_folder))
    assert (report_folder / "index.html").read_bytes() == before
    assert os.listdir(report_folder) == ["index.html"]


def test_a_missing_linked_file_is_logged_and_still_linked(tree, caplog):
    """Was: a clip's wav or PNG gone from the eval folder (e.g. only metrics.json copied from
    the machine that ran the evaluation) gave a page with an empty player and a broken image,
    and nothing said so. M67 (the warning dropped, or given for files that are there)."""
    root, folders = tree
    gone = os.path.join(folders[0], "clips", "1-200-A-3_interpretation.wav")
    os.remove(gone)
    with caplog.at_level("WARNING", logger=html_report.__name__):
        path = html_report.write_report(folders, str(root / "report"))
    warned = [r.getMessage() for r in caplog.records if r.name == html_report.__name__]
    assert warned == [f"The report links {gone}, which does not exist: its player or image will be empty."]
    srcs = [attrs["src"] for tag, attrs in _parse(path).tags if tag == "audio"]
    assert [s for s in srcs if not os.path.isfile(_target(os.path.dirname(path), s))] == [
        "../evals/piq/clips/1-200-A-3_interpretation.wav"
    ]


def test_report_command_prints_the_summary_and_the_path(tree, capsys):
    """M50 (the printed table without the intervals), M51 (--title ignored), M52 / M52b
    (another path printed / returned)."""
    root, folders = tree
    out = str(root / "merged")
    path = report.main([*folders, "--out", out, "--title", TITLE])
    assert path == os.path.join(out, "index.html")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "| method | Fid-In | AD % | SI-SDRi dB | GT precision | loss_vq |",
        "|---|---|---|---|---|---|",
        "| PIQ | 0.900 ± 0.100 | 12.5 ± 3.000 | 4.000 | 0.800 | 0.250 |",
        "| PIQ: random mask | 0.500 | 40.0 | -3.000 | 0.300 | - |",
    ]
    assert lines[-1] == f"Report: {path}"
    assert _parse(path).texts("h1") == [TITLE]


def test_evaluations_with_the_same_label_keep_a_row_each_named_by_their_folder(tree, capsys):
    """Was: the same L2I at two thresholds (evals/l2i_mix: Fid-In 0.6, random mask 0.2; w9:
    0.7 and 0.1) printed one "L2I [mixtures]" row (the second's 0.7, the first's gone) and
    the HTML two rows of the same name. Each row is kept, named by its folder relative to
    the folders' common parent (root); the saliency and all-ones rows, the same classifier
    and clips, are shown once, from the first evaluation (0.4, 1.0)."""
    root, folders = tree
    second = _l2i_mixtures_evaluation()
    second["methods"] = {"L2I": {"fid_in": 0.7}, "random": {"fid_in": 0.1}, "saliency": {"fid_in": 0.4}}
    _write_json(second, str(root / "w9" / "metrics.json"))
    path = report.main([folders[1], str(root / "w9"), "--out", str(root / "merged")])
    expected = [
        ("L2I [mixtures] (evals/l2i_mix)", "0.600"),
        ("L2I [mixtures] (evals/l2i_mix): random mask", "0.200"),
        ("L2I [mixtures] (w9)", "0.700"),
        ("L2I [mixtures] (w9): random mask", "0.100"),
        ("saliency (captum) [mixtures]", "0.400"),
        ("all ones [mixtures]", "1.000"),
    ]
    printed = capsys.readouterr().out.splitlines()
    assert printed[2:-1] == [f"| {label} | {value} |" for label, value in expected]
    parsed = _parse(path)
    _, *rows = parsed.table("summary")["rows"]
    assert [tuple(_texts(row)) for row in rows] == expected
    assert parsed.texts("h2") == ["Summary", "L2I [mixtures] (evals/l2i_mix)", "L2I [mixtures] (w9)"]


def test_report_refuses_a_folder_given_twice(tree, capsys):
    """Was: `report.py A A` showed every row of A twice. Refused (exit status 2) with the
    folder named, also when the second spelling differs (a trailing slash); no page written."""
    root, folders = tree
    out = root / "merged"
    with pytest.raises(SystemExit) as stopped:
        report.main([folders[0], folders[1], folders[0], "--out", str(out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(  # after "<program>: error: "
        f": error: the evaluation folder {folders[0]} is given twice: give each folder once"
    )
    with pytest.raises(SystemExit):
        report.main([folders[0], folders[0] + "/", "--out", str(out)])
    assert f"{folders[0]}/ (the same as {folders[0]}) is given twice" in capsys.readouterr().err
    assert not out.exists()


def test_report_to_a_file_says_so_in_one_line(tree, capsys):
    """Was: `--out` naming a file ended in a FileExistsError traceback. Now one line naming
    --out, exit status 2, and the file is left as it was."""
    root, folders = tree
    blocker = root / "notes.txt"
    blocker.write_text("mine")
    assert report.cli([*folders, "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == (
        f"recipes/report.py: Cannot write to {blocker} ({blocker} is a file, not a folder): the run "
        "writes its results there. Pass --out with a folder you can write to.\n"
    )
    assert blocker.read_text() == "mine"
