"""The methods an evaluation scores besides the interpreter, and their row labels.

One list of the baselines and reference masks with the labels every table,
figure and report gives them: `recipes.evaluation` computes them by these
names, `recipes.reporting` shows them by these labels.

Authors
 * audio-interpret contributors 2026
"""

#: The baselines eval.py scores, in report order: name -> row label.
BASELINE_LABELS = {
    "random": "random mask",
    "saliency": "saliency (captum)",
    "integrated_gradients": "Integrated Gradients (captum)",
    "smoothgrad": "SmoothGrad (captum)",
    "occlusion": "occlusion (captum)",
    "above_floor": "above the clip's floor (no classifier)",
}
BASELINES = tuple(BASELINE_LABELS)
#: By-design baselines that read the classifier's own representation grid, scored (and part of
#: "all") only where that grid spans the input (the transformer backbones): name -> row label.
MAP_BASELINE_LABELS = {"amt": "AMT (activation map)"}
MAP_BASELINES = tuple(MAP_BASELINE_LABELS)
#: The baselines of the classifier alone (not the random permutation of the interpreter's
#: mask): the same for every interpreter on the same classifier and clips, so the summary
#: shows them once per classifier and data.
CLASSIFIER_BASELINES = BASELINES[1:]
#: ... and with AMT (where the classifier has a grid): every baseline of the classifier alone.
CLASSIFIER_ONLY_BASELINES = CLASSIFIER_BASELINES + MAP_BASELINES
#: The interpreter's best mask from the ground truth (`InterpreterBrain.oracle_mask`, L2I's
#: best NMF components): a row per interpreter, but a reference, not ranked with the methods.
ORACLE = "oracle"
#: Reference masks: name -> row label.
REFERENCE_LABELS = {"all_ones": "all ones", "ground_truth": "ground truth"}
#: The label of every method an evaluation's row can name, besides the interpreter itself.
METHOD_LABELS = {**BASELINE_LABELS, **MAP_BASELINE_LABELS, ORACLE: "best components (oracle)"}
