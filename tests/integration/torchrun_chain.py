"""Runs several recipes' `main(argv)` one after the other in each process of ONE torchrun launch.

`python -m torch.distributed.run --nproc_per_node=2 tests/integration/torchrun_chain.py PLAN`
where PLAN is a json file: {"results": folder, "steps": [{"name", "module", "argv"}, ...]}.
A launch costs about 13 s on 2 cores before any work (torchrun and two processes importing
torch, SpeechBrain, captum): tests/integration/test_ddp.py pays it once for the training
recipe, eval.py and `audio-interpret` instead of once each. Each step joins the process
group as its command does (SpeechBrain's `ddp_init_group`, `audio-interpret`'s own join),
through a store of its own on a free port (rank 0 holds it), as a fresh launch
would: a gloo group joined again through torchrun's agent store after one was left hangs
here. The group is left after the step, as the command's exit would. Each process writes
`<results>/rank<R>.json`: {step name: {"status": main's int return or 0, "error": the
traceback or None}}. The process exits 0 whatever the steps returned: the test reads them.
"""

import importlib
import json
import os
import socket
import sys
import traceback
from datetime import timedelta

import torch


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step_port(agent_store, name):
    """The port of the step's store: picked by rank 0 just before the step, handed to the
    other process through torchrun's agent store. Ports picked by the test before the launch
    stayed free for the whole chain (tens of seconds), while the steps' gloo groups took
    ephemeral ports of the same range: one could take a later step's port."""
    key = f"torchrun_chain/port/{name}"
    if os.environ.get("RANK", "0") == "0":
        agent_store.set(key, str(free_port()))
    return int(agent_store.get(key))


def run_steps(plan):
    results = {}
    agent_store = torch.distributed.TCPStore(  # torchrun's: the launch's MASTER_PORT
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=120)
    )
    for step in plan["steps"]:
        port = step_port(agent_store, step["name"])
        os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"  # rank 0 holds this step's store
        os.environ["MASTER_PORT"] = str(port)
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
