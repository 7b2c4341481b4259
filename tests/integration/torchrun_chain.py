"""Runs several recipes' `main(argv)` one after the other in each process of ONE torchrun launch.

`python -m torch.distributed.run --nproc_per_node=2 tests/integration/torchrun_chain.py PLAN`
where PLAN is a json file: {"results": folder, "steps": [{"name", "module", "argv", "port"}, ...]}.
A launch costs about 13 s on 2 cores before any work (torchrun and two processes importing
torch, SpeechBrain, captum): tests/integration/test_ddp.py pays it once for the training
recipe, eval.py and `audio-interpret` instead of once each. Each step joins the process
group as its command does (SpeechBrain's `ddp_init_group`, `audio-interpret`'s own join),
through a store of its own on the step's free `port` (rank 0 holds it), as a fresh launch
would: a gloo group joined again through torchrun's agent store after one was left hangs
here. The group is left after the step, as the command's exit would. Each process writes
`<results>/rank<R>.json`: {step name: {"status": main's int return or 0, "error": the
traceback or None}}. The process exits 0 whatever the steps returned: the test reads them.
"""

import importlib
import json
import os
import sys
import traceback

import torch


def run_steps(plan):
    results = {}
    for step in plan["steps"]:
        os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"  # rank 0 holds this step's store
        os.environ["MASTER_PORT"] = str(step["port"])
        try:
            returned = importlib.import_module(step["module"]).main(step["argv"])
            results[step["name"]] = {"status": returned if isinstance(returned, int) else 0, "error": None}
        except BaseException:  # noqa: BLE001 - reported to the test, which names the step
            results[step["name"]] = {"status": None, "error": traceback.format_exc()}
        sys.stdout.flush()
        if torch.distributed.is_initialized():  # the next command joins afresh
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    return results


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fin:
        plan = json.load(fin)
    rank = os.environ.get("RANK", "0")
    outcome = run_steps(plan)
    with open(os.path.join(plan["results"], f"rank{rank}.json"), "w", encoding="utf-8") as fout:
        json.dump(outcome, fout, indent=1)
