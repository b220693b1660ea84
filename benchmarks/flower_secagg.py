"""One round of Flower's SecAgg+ workflow in its simulation engine: run in Flower's venv.

Run by ``benchmarks/secagg.py`` as ``.venv-flower/bin/python benchmarks/flower_secagg.py
N D NUM_SHARES THRESHOLD DROPOUT`` (``scripts/setup.sh --with-flower``; Flower's pins clash
with ours). Every client returns the same fixed float32 update of D parameters (no
training: the time is the protocol's); a DROPOUT fraction of the clients fails at the
masked-vector stage, after sharing its keys (the same point as our benchmark's
dropouts). Prints one JSON line: ``fit_s``, the seconds of the SecAgg+ fit workflow
(its four stages: setup, share keys, collect masked vectors, unmask) of the second of two
rounds, timed around the workflow's own call, so Ray's start-up is not counted.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np
from flwr.app import Context, Message
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.simulation import run_simulation

N, D, SHARES, THRESHOLD, DROPOUT = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                    int(sys.argv[4]), float(sys.argv[5]))
TIMES: list[float] = []


class FixedClient(NumPyClient):
    """Returns a fixed update (values in [-1, 1), within SecAgg+'s clipping range)."""

    def __init__(self, seed: int) -> None:
        self.update = np.random.default_rng(seed).uniform(-1, 1, D).astype(np.float32)

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        return [self.update], 8, {}


def drop_mod(msg: Message, ctxt: Context, call_next):  # type: ignore[no-untyped-def]
    """The first DROPOUT * N partitions fail once asked for their masked vector."""
    pid = int(ctxt.node_config.get("partition-id", 0))
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is not None and pid < round(DROPOUT * N) \
            and configs.get(Key.STAGE) == Stage.COLLECT_MASKED_VECTORS:
        raise RuntimeError("dropped out (benchmark)")
    return call_next(msg, ctxt)


def client_fn(context: Context):  # type: ignore[no-untyped-def]
    return FixedClient(int(context.node_config.get("partition-id", 0))).to_client()


class TimedSecAggPlus(SecAggPlusWorkflow):
    def __call__(self, grid, context):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        super().__call__(grid, context)
        TIMES.append(time.perf_counter() - start)


server = ServerApp()


@server.main()
def main(grid, context: Context) -> None:  # type: ignore[no-untyped-def]
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=N,
                      min_available_clients=N,
                      initial_parameters=ndarrays_to_parameters([np.zeros(D, np.float32)]))
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=2),
                           strategy=strategy)
    DefaultWorkflow(fit_workflow=TimedSecAggPlus(num_shares=SHARES,
                                                 reconstruction_threshold=THRESHOLD))(
        grid, legacy)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    client = ClientApp(client_fn=client_fn, mods=[drop_mod, secaggplus_mod])
    run_simulation(server_app=server, client_app=client, num_supernodes=N,
                   backend_config={"client_resources": {"num_cpus": 1}})
    if not TIMES:
        print("the SecAgg+ workflow did not run", file=sys.stderr)
        sys.exit(1)
    # The first round also starts Ray's actors: the second is the protocol's time.
    print(json.dumps({"fit_s": TIMES[-1], "first_round_s": TIMES[0]}))
