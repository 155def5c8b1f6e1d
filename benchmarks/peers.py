"""This server beside the peer servers, on the same models and requests, in one run.

    .venv/bin/python benchmarks/peers.py [--rounds 3] [--duration 5] [--models 200]
        [--only ours,mms,...] [--env VAR=VALUE ...] [--variant NAME:VAR=VALUE,VAR=VALUE ...]

Servers (``--only`` picks some; ours is needed for the ratios):
  ours        ``python -m server serve``, multi-model mode; ``--env`` adds variables to it and
              ``--variant`` runs more of our server with other variables (each a column), e.g.
              ``--variant batched:MODEL_SERVER_BATCH_MAX=16``
  mms         multi-model-server + sagemaker-inference, set up as the AWS scikit-learn container does
  mlserver    MLServer with its scikit-learn and XGBoost runtimes
  torchserve  TorchServe with a custom handler, a .mar per model
  starlette   floor: a bare Starlette/uvicorn endpoint (our HTTP stack) answering a fixed body
  raw         floor: a raw uvloop/httptools endpoint
Each peer is installed on first use into a venv of its own under benchmarks/.peers/ (from
requirements/peers-*.txt; cached). Every server gets one math thread per worker
(OMP_NUM_THREADS=1 and the like; XGBoost's nthread=1 in the peers' handlers) and the peers get
``--peer-workers`` worker processes per model (default 2, one per core: multi-model-server's and
TorchServe's own default; the scikit-learn container sets 1, ``--peer-workers 1``).

Measured, one server at a time: start time; memory of the whole process tree (RSS and PSS)
empty and per added model; the first LoadModel of each kind; LoadModel p50/p99 over the added
models (all ``--models`` for servers that hold many models in a fixed set of processes, ours and
MLServer; ``--density-models`` for those that start processes per model, MMS and TorchServe,
which cannot hold 200 on this machine); unload + reload of one model.

Then traffic, with ``wrk`` (Debian's package) as the load generator, keep-alive, one row of four
floats per request in each API's own form, to 127.0.0.1 only: one hot scikit-learn model and
one XGBoost model at 1, 8 and 32 clients; the ``--models`` models at 1, 8 and 32 clients with
the model of each request drawn uniformly and by Zipf's law, and uniformly over their
scikit-learn half alone (``many-sklearn``: one framework's worker, as the one hot model has); a
small TorchScript MLP at 1 and 32 clients. Rounds are interleaved: each round runs every case
on every server in turn (the order rotating each round), and the ratios (ours / each other server) are taken inside each
round, so that a noisy neighbour on the shared machine hits both sides of a ratio alike. The
tables print each round and the median over rounds. Sizes: ``--rounds 1 --duration 2
--models 50`` is a quick run (~5 minutes once the venvs exist); the defaults 20 to 30 minutes.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import peer_venvs, wrk  # noqa: E402
from benchmarks.options import parse_env  # noqa: E402
from benchmarks.peer_models import build  # noqa: E402
from benchmarks.peer_servers import MMS, Floor, MLServer, Ours, TorchServe  # noqa: E402
from harness.server import tree_memory  # noqa: E402

SERVERS = ("ours", "mms", "mlserver", "torchserve", "starlette", "raw")
MB = 2**20


NOT_SERVED = ("–: not served. multi-model-server and TorchServe start worker processes per model (~290 and ~600 MB RSS "
              "each here), so they run the hot models only; multi-model-server and MLServer are set up without PyTorch.")


def cases(clients: list[int]) -> list[tuple[str, int]]:
    table = [(case, c) for case in ("sklearn", "xgboost", "many-uniform", "many-zipf", "many-sklearn") for c in clients]
    return table + [("torch", 1), ("torch", max(clients))]




def make_servers(args, work: Path, models_root: Path) -> list:
    chosen = set(args.only.split(",")) if args.only else set(SERVERS)
    unknown = chosen - set(SERVERS)
    if unknown:
        raise SystemExit(f"--only: unknown server(s) {', '.join(sorted(unknown))}; choose from {', '.join(SERVERS)}")
    servers = []
    if "ours" in chosen:
        servers.append(Ours(work / "ours", 0, models_root, parse_env(args.env)))
        for variant in args.variant:
            name, _, assignments = variant.partition(":")
            env = {**parse_env(args.env), **parse_env([a for a in assignments.split(",") if a], "--variant")}
            servers.append(Ours(work / f"ours-{name}", 0, models_root, env, label=f"ours[{name}]"))
    peers = {"mms": MMS, "mlserver": MLServer, "torchserve": TorchServe}
    for name in ("mms", "mlserver", "torchserve"):
        if name in chosen:
            servers.append(peers[name](work / name, args.peer_workers, peer_venvs.ensure(name)))
    for raw in (False, True):
        if ("raw" if raw else "starlette") in chosen:
            servers.append(Floor(work / ("raw" if raw else "starlette"), 0, raw))
    return servers


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def setup_and_measure(server, hot: dict, many: list, args) -> dict:
    """Start the server, load its models, and measure memory, LoadModel and unload + reload."""
    added = many if server.many else many[: args.density_models]
    server.prepare([hot[kind] for kind in sorted(server.kinds)] + added)
    result = {"start_s": timed(server.start)}
    if not server.loads:
        return result
    rss0, pss0 = tree_memory(server.pid)
    result["first_load_s"] = {kind: timed(lambda kind=kind: server.load(hot[kind])) for kind in sorted(server.kinds)}
    rss1, pss1 = tree_memory(server.pid)
    loads = [timed(lambda model=model: server.load(model)) for model in added]
    rss2, pss2 = tree_memory(server.pid)
    unloads, reloads = [], []
    for _ in range(args.reloads):
        unloads.append(timed(lambda: server.unload(added[0].name)))
        reloads.append(timed(lambda: server.load(added[0])))
    result.update({
        "empty_rss_mb": rss0 / MB, "empty_pss_mb": pss0 / MB, "added_models": len(added),
        "per_model_rss_mb": (rss2 - rss1) / len(added) / MB, "per_model_pss_mb": (pss2 - pss1) / len(added) / MB,
        "tree_rss_mb": rss2 / MB, "load_p50_ms": ms(loads, 50), "load_p99_ms": ms(loads, 99),
        "unload_p50_ms": ms(unloads, 50), "reload_p50_ms": ms(reloads, 50), "reload_max_ms": ms(reloads, 100)})
    if not server.many:  # a process per model: free them, the traffic uses only the hot models
        for model in added:
            server.unload(model.name)
    return result


def serves(server, case: str) -> bool:
    return server.many if case.startswith("many") else case in server.kinds


def drive(server, case: str, clients: int, seconds: float, hot: dict, many: list, zipf: float) -> dict:
    if case == "many-sklearn":  # one framework's share of the many: against the one scikit-learn model
        names = [m.name for m in many if m.kind == "sklearn"]
    else:
        names = [m.name for m in many] if case.startswith("many") else [hot[case].name]
    body, content_type = server.request()
    return wrk.run(server.port, [server.path(name) for name in names], body, content_type, clients, seconds,
                   zipf=zipf if case == "many-zipf" else None)


def ratio_text(value: float) -> str:
    return f"{value:.0%}" if value < 1 else f"{value:.2f}x"


def table(results: dict, labels: list[str], ours: list[str], rows: list[tuple[str, int]]) -> str:
    """Markdown: req/s (p50 / p99 ms) per server, then ours / each other server."""
    others = [label for label in labels if label not in ours]
    head = ["case", "clients"] + labels + [f"{o} / {p}" for o in ours for p in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, clients in rows:
        cells = [case, str(clients)]
        for label in labels:
            figure = results.get((label, case, clients))
            cells.append("–" if figure is None else
                         f"{figure['requests_per_s']:,.0f} ({figure['p50_ms']:.2f} / {figure['p99_ms']:.1f})")
        for o in ours:
            for p in others:
                value = results.get(("ratio", o, p, case, clients))
                cells.append("–" if value is None else ratio_text(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(round_results: dict, ours: list[str], others: list[str], rows) -> None:
    for o in ours:
        for p in others:
            for case, clients in rows:
                a, b = round_results.get((o, case, clients)), round_results.get((p, case, clients))
                if a and b and b["requests_per_s"]:
                    round_results[("ratio", o, p, case, clients)] = a["requests_per_s"] / b["requests_per_s"]


def median_of(rounds: list[dict]) -> dict:
    keys = {key for result in rounds for key in result}
    merged = {}
    for key in keys:
        values = [result[key] for result in rounds if key in result]
        if key[0] == "ratio":
            merged[key] = statistics.median(values)
        else:
            merged[key] = {field: statistics.median(v[field] for v in values) for field in ("requests_per_s", "p50_ms", "p99_ms")}
    return merged


def memory_table(measured: dict) -> str:
    head = ["server", "start s", "empty tree RSS / PSS MB", "first LoadModel (s)", "per added model RSS / PSS MB",
            "LoadModel p50 / p99 ms", "unload, then reload p50 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, m in measured.items():
        if "load_p50_ms" not in m:
            continue
        first = ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in m["first_load_s"].items())
        lines.append(f"| {label} | {m['start_s']:.1f} | {m['empty_rss_mb']:.0f} / {m['empty_pss_mb']:.0f} | {first} | "
                     f"{m['per_model_rss_mb']:.3f} / {m['per_model_pss_mb']:.3f} (of {m['added_models']}) | "
                     f"{m['load_p50_ms']:.1f} / {m['load_p99_ms']:.1f} | {m['unload_p50_ms']:.1f}, {m['reload_p50_ms']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--models", type=int, default=200, help="the many-model set")
    parser.add_argument("--density-models", type=int, default=4, help="models added to servers with a process per model")
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--zipf", type=float, default=1.0, help="exponent of the Zipf choice of model")
    parser.add_argument("--peer-workers", type=int, default=2)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="for our server (every variant)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / ".peers" / "last-run.json")
    args = parser.parse_args()
    if not wrk.available():
        raise SystemExit(wrk.INSTALL_HINT)
    clients = [int(c) for c in args.clients.split(",")]
    rows = cases(clients)
    print(f"[{time.strftime('%H:%M:%S')}] load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(a shared machine: compare ratios inside a round, not absolute figures across runs)", flush=True)

    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        hot, many = build(work / "models", args.models)
        servers = make_servers(args, work / "servers", work / "models")
        measured, live, rounds, labels, ours, load_averages = {}, [], [], [], [], []
        try:
            for server in servers:
                try:
                    measured[server.label] = setup_and_measure(server, hot, many, args)
                    live.append(server)
                    print(f"[{time.strftime('%H:%M:%S')}] {server.label}: {json.dumps(measured[server.label])}", flush=True)
                except Exception as error:  # a peer that fails is reported and left out; the rest go on
                    print(f"[{time.strftime('%H:%M:%S')}] {server.label} left out: {error}", flush=True)
                    server.stop()
            labels = [s.label for s in live]
            ours = [label for label in labels if label.startswith("ours")]
            others = [label for label in labels if label not in ours]
            for server in live:  # warm every path once, untimed
                for case in ("sklearn", "xgboost", "many-uniform", "torch"):
                    if serves(server, case):
                        drive(server, case, 8, 1, hot, many, args.zipf)
            rounds = []
            for index in range(args.rounds):
                result, order = {}, live[index % len(live):] + live[: index % len(live)]
                load_before = os.getloadavg()[0]
                for case, c in rows:
                    for server in order:
                        if serves(server, case):
                            figure = drive(server, case, c, args.duration, hot, many, args.zipf)
                            if figure["errors"]:
                                print(f"  {server.label} {case} x{c}: {figure['errors']} errors of {figure['requests']}")
                            result[(server.label, case, c)] = figure
                ratios(result, ours, others, rows)
                rounds.append(result)
                load_averages.append((load_before, os.getloadavg()[0]))
                print(f"\n== round {index + 1} of {args.rounds} (load average {load_before:.2f} -> {os.getloadavg()[0]:.2f})"
                      f" req/s (p50 / p99 ms)\n{table(result, labels, ours, rows)}", flush=True)
        finally:
            for server in servers:
                server.stop()

    print(f"\n== memory and model loading (peers: {args.peer_workers} workers per model)\n{memory_table(measured)}")
    if rounds:
        print(f"\n== median over {len(rounds)} rounds: req/s (p50 / p99 ms) and ours / each\n"
              f"{table(median_of(rounds), labels, ours, rows)}\n{NOT_SERVED}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "measured": measured, "load_averages": load_averages,
                                     "rounds": [{"|".join(map(str, k)): v for k, v in r.items()} for r in rounds]},
                                    indent=1))
    print(f"\n(all figures also in {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json})")


if __name__ == "__main__":
    main()
