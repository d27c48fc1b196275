"""Benchmark: signed Shopify webhooks against `run`, next to bare Flask, answers and processing measured.

What is measured, and how:

- Load (bench/loadgen.py): signed `orders/updated` deliveries built as bytes before the clock starts,
  sent by raw-socket HTTP/1.1 keep-alive clients in PROCESSES processes × CONNECTIONS connections
  (default 4 × 2 = 8), each connection sending its next request as soon as the answer is in. In the
  sustained rounds 10% (`--duplicates`) resend an earlier delivery with its webhook id, which must be
  answered 200 "duplicate" and not processed again; every unique delivery is the first update of an
  order new to the bot (its snapshot is stored: real work, no KakaoTalk message).
- Targets, each in a process of its own (bench/webhook_targets.py): a bare Flask "return 200" on
  waitress with the bot's thread count (the baseline); `python -m bot run` with a temporary config
  on SQLite, and with `--postgres` also on a scratch PostgreSQL database; with `--floor`, a plain
  Flask view doing the same HMAC check and one INSERT on each database (the stack's floor).
- Alternation: in every one of `--rounds` rounds each target gets the same `--requests` deliveries
  (fresh webhook ids per round), one target after the other (bare, then the others), after a
  `--warmup` load not counted. Per target: requests/s (requests / first send → last answer) and
  p50 / p99 / max answer time, min / median / max over the rounds; the ratio run / bare of each
  round, min / median / max (goal ≥ 0.40×, 0.5× better; p99 ≤ 15 ms); the CPU of the server's
  process and of the clients during the load, so that the bare rate shows the client is not the limit;
  and per request the server's CPU (µs) and its threads' context switches (each time the interpreter
  lock passes between threads the kernel switches twice: on 2 cores a GIL-bound server's kernel time).
- Processing to the last event: after each load on `run`, the benchmark polls the database for
  this round's events not yet `done` / `ignored` and prints how long after the last answer the
  backlog was empty; then checks answers (accepted = unique sent, duplicate = redeliveries),
  events processed = unique sent, and no event claimed twice.
- `--burst N`: instead, per round and database, N deliveries without redeliveries, updates of
  `--orders` orders (N / orders updates each, a helper app's storm) whose address and items never
  change, sent as fast as `run` answers: the burst's duration (first send → last answer), the
  time from the last answer until the backlog is empty, and their ratio (goal ≤ 0.25).

    python bench/webhooks.py [--requests 3000] [--rounds 3] [--postgres] [--floor]
    python bench/webhooks.py --burst 10000 [--orders 1000] [--postgres]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Delivery, LoadClients, LoadResult, deliveries, percentile  # noqa: E402
from standin import free_port, scratch_postgres, spread  # noqa: E402
from webhook_targets import BotService, ServerProcess  # noqa: E402

POLL, POLL_MAX = 0.005, 0.1  # seconds between looks at the backlog: at first, at most
SETTLE = 0.5  # seconds between targets: the bot's after-drain housekeeping must not land in the next load
RATIO_GOAL, RATIO_BETTER, P99_GOAL, DRAIN_GOAL = 0.40, 0.50, 15.0, 0.25


@dataclass
class Target:
    label: str
    server: Any  # ServerProcess or BotService
    bot: bool = False


@dataclass
class Figures:
    """One target in one round."""

    load: LoadResult
    server_cpu: float
    switches: int  # context switches of the server's threads during the load
    drained: float | None = None  # seconds from the last answer until the backlog was empty
    problems: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)  # this round's events by status, once drained

    def cores(self, cpu: float) -> float:
        return cpu / self.load.wall if self.load.wall > 0 else 0.0

    def cpu_per_request(self) -> float:
        """The server's CPU per request, in µs (its worker's processing included, for `run`)."""
        return self.server_cpu / len(self.load.latencies) * 1e6

    def switches_per_request(self) -> float:
        return self.switches / len(self.load.latencies)


def measure(clients: LoadClients, target: Target, work: list[Delivery], deadline: float) -> Figures:
    """One load on `target`; on the bot, also until its backlog is empty, and the outcome checked."""
    after = target.server.last_id() if target.bot else 0
    raw = [delivery.request() for delivery in work]
    before, switched = target.server.cpu(), target.server.switches()
    load = clients.run(target.server.port, raw)
    figures = Figures(load, target.server.cpu() - before, target.server.switches() - switched)
    if target.bot:
        figures.drained = wait_drained(target.server, after, load.last, deadline)
        figures.problems, figures.statuses = check(target.server, after, work, load, figures.drained)
    if load.reconnects:
        figures.problems.append(f"the server closed connections {load.reconnects} times (not keep-alive)")
    time.sleep(SETTLE)
    return figures


def wait_drained(service: BotService, after: int, last_answer: float, deadline: float) -> float | None:
    """Seconds from the last answer until no event above `after` is left unprocessed; None past `deadline`."""
    while service.backlog(after):
        waited = time.monotonic() - last_answer
        if waited > deadline:
            return None
        # Each look is a query on the bot's database: 2% of the wait so far, so the looks neither load the
        # database nor blur a short drain.
        time.sleep(min(POLL_MAX, max(POLL, waited / 50)))
    return max(0.0, time.monotonic() - last_answer)


def check(service: BotService, after: int, work: list[Delivery], load: LoadResult,
          drained: float | None) -> tuple[list[str], dict[str, int]]:
    """What went wrong (answers other than expected, events not processed exactly once), and the events
    by status."""
    unique = sum(1 for item in work if not item.duplicate)
    expected = {kind: n for kind, n in (("accepted", unique), ("duplicate", len(work) - unique)) if n}
    problems = []
    if load.answers != expected:
        problems.append(f"answers {load.answers}, expected {expected}")
    outcome = service.outcome(after)
    statuses = outcome["statuses"]
    processed = statuses.get("done", 0) + statuses.get("ignored", 0)
    if drained is None or processed != unique or sum(statuses.values()) != unique:
        problems.append(f"{processed} of {unique} unique events processed (stored by status: {statuses})")
    if outcome["attempts"] > 1:
        problems.append(f"an event was claimed {outcome['attempts']} times")
    return problems, statuses


def ms(load: LoadResult, share: float) -> float:
    return percentile(load.latencies, share) * 1000


# -- the sustained rounds ----------------------------------------------------------------------------


def sustained(args: argparse.Namespace, clients: LoadClients, targets: list[Target]) -> bool:
    for target in targets if args.warmup else []:
        measure(clients, target, deliveries(args.warmup, args.duplicates, seed=10_000, first_order=10_000_000),
                args.drain_deadline)
    table: dict[str, list[Figures]] = {target.label: [] for target in targets}
    print(f"{'round':<6}{'target':<24}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'server':>9}"
          f"{'client':>9}{'µs/req':>8}{'cs/req':>7}  processed")
    for number in range(args.rounds):
        work = deliveries(args.requests, args.duplicates, seed=number, first_order=1 + number * args.requests)
        for target in targets:
            figures = measure(clients, target, work, args.drain_deadline)
            table[target.label].append(figures)
            load = figures.load
            done = "" if figures.drained is None and not target.bot else (
                f"{figures.drained:.2f} s after the last answer ({outcome_text(figures)})" if figures.drained is not None
                else "NOT drained")
            print(f"{number + 1:<6}{target.label:<24}{load.rate:>8.0f}{ms(load, 0.5):>8.2f}{ms(load, 0.99):>8.2f}"
                  f"{ms(load, 1.0):>8.2f}{figures.cores(figures.server_cpu):>6.2f} cpu"
                  f"{figures.cores(load.client_cpu):>6.2f} cpu{figures.cpu_per_request():>8.0f}"
                  f"{figures.switches_per_request():>7.1f}  {done}")
            for problem in figures.problems:
                print(f"      PROBLEM: {problem}")
    report_sustained(args, clients, targets, table)
    return not any(figures.problems for rounds in table.values() for figures in rounds)


def report_sustained(args: argparse.Namespace, clients: LoadClients, targets: list[Target],
                     table: dict[str, list[Figures]]) -> None:
    bare = table[targets[0].label]
    print(f"\nmin / median / max over {args.rounds} rounds:")
    print(f"{'target':<24}{'req/s':>22}{'p50 ms':>22}{'p99 ms':>22}{'max ms':>22}")
    for target in targets:
        rounds = table[target.label]
        cells = [spread_cell([f.load.rate for f in rounds], "{:.0f}")]
        cells += [spread_cell([ms(f.load, share) for f in rounds], "{:.1f}") for share in (0.5, 0.99, 1.0)]
        print(f"{target.label:<24}" + "".join(f"{cell:>22}" for cell in cells))
    for target in targets[1:]:
        rounds = table[target.label]
        ratios = [f.load.rate / b.load.rate for f, b in zip(rounds, bare)]
        p99 = statistics.median(ms(f.load, 0.99) for f in rounds)
        print(f"{target.label} / bare Flask: {spread(ratios, '{:.2f}', '×')} (goal ≥ {RATIO_GOAL:.2f}×, "
              f"{RATIO_BETTER:.1f}× better: {verdict(statistics.median(ratios) >= RATIO_GOAL)}); "
              f"p99 median {p99:.1f} ms (goal ≤ {P99_GOAL:.0f} ms: {verdict(p99 <= P99_GOAL)})")
        floor = table.get(target.label.replace("run", "floor"))
        if target.bot and floor:
            print(f"  {target.label} / {target.label.replace('run', 'floor')}: "
                  f"{spread([f.load.rate / b.load.rate for f, b in zip(rounds, floor)], '{:.2f}', '×')}")
        if target.bot:
            drained = [f.drained for f in rounds if f.drained is not None]
            if drained:
                print(f"  backlog empty after the last answer: {spread(drained, '{:.2f}', ' s')}")
    print("the server's CPU (µs) and its threads' context switches per request (a GIL handed between threads "
          "costs two):")
    for target in targets:
        rounds = table[target.label]
        print(f"  {target.label:<22} CPU {spread([f.cpu_per_request() for f in rounds], '{:.0f}', ' µs')}; "
              f"switches {spread([f.switches_per_request() for f in rounds], '{:.1f}')}")
    per_request = statistics.median(f.load.client_cpu / len(f.load.latencies) for f in bare) * 1e6
    print(f"client: {per_request:.0f} µs of client CPU per request (one core of client alone: "
          f"{1e6 / per_request:,.0f} req/s); at the bare rate the {clients.processes} client processes used "
          f"{statistics.median(f.cores(f.load.client_cpu) for f in bare):.2f} of a core and the bare server "
          f"{statistics.median(f.cores(f.server_cpu) for f in bare):.2f} (one process, one GIL)")


# -- the burst ---------------------------------------------------------------------------------------


def burst(args: argparse.Namespace, clients: LoadClients, targets: list[Target]) -> bool:
    bots = [target for target in targets if target.bot]
    table: dict[str, list[Figures]] = {target.label: [] for target in bots}
    per_order = args.burst / args.orders
    print(f"burst: {args.burst} orders/updated deliveries, {args.orders} orders ({per_order:g} updates each, no "
          f"change of address or items), no redeliveries; {args.rounds} rounds")
    print(f"{'round':<6}{'target':<24}{'burst s':>9}{'req/s':>8}{'p99 ms':>8}{'drain s':>9}{'ratio':>7}"
          f"{'events/s':>10}")
    for number in range(args.rounds):
        work = deliveries(args.burst, 0.0, seed=500 + number, orders=args.orders, epoch=number + 1)
        for target in bots:
            figures = measure(clients, target, work, args.drain_deadline)
            table[target.label].append(figures)
            load, drained = figures.load, figures.drained
            shown = f"{drained:>9.2f}{drained / load.wall:>7.2f}{args.burst / (load.wall + drained):>10.0f}" \
                if drained is not None else "  NOT drained"
            print(f"{number + 1:<6}{target.label:<24}{load.wall:>9.2f}{load.rate:>8.0f}{ms(load, 0.99):>8.2f}{shown}"
                  f"  {outcome_text(figures)}")
            for problem in figures.problems:
                print(f"      PROBLEM: {problem}")
    print(f"\nmin / median / max over {args.rounds} rounds:")
    for label, rounds in table.items():
        done = [f for f in rounds if f.drained is not None]
        if not done:
            print(f"{label}: the backlog never emptied within {args.drain_deadline:.0f} s")
            continue
        ratios = [f.drained / f.load.wall for f in done]
        print(f"{label}: burst {spread([f.load.wall for f in done], '{:.2f}', ' s')}; backlog empty "
              f"{spread([f.drained for f in done], '{:.2f}', ' s')} after the last answer; ratio "
              f"{spread(ratios, '{:.2f}')} (goal ≤ {DRAIN_GOAL}: {verdict(statistics.median(ratios) <= DRAIN_GOAL)})")
    return not any(figures.problems for rounds in table.values() for figures in rounds)


def outcome_text(figures: Figures) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(figures.statuses.items()))


def spread_cell(values: list[float], fmt: str) -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def verdict(met: bool) -> str:
    return "met (median)" if met else "NOT met (median)"


# -- the targets -------------------------------------------------------------------------------------


def start_targets(args: argparse.Namespace, stack: ExitStack, folder: Path) -> list[Target]:
    """Bare Flask first (the baseline), then per database the floor (with --floor) and `run`."""
    ports = iter(range(args.ports, args.ports + 100)) if args.ports else None

    def port() -> int:
        return next(ports) if ports else free_port()

    targets = [] if args.burst else [Target("bare Flask", ServerProcess("bare", port=port()))]
    databases = [("SQLite", f"sqlite:///{folder / 'bot.sqlite3'}", f"sqlite:///{folder / 'floor.sqlite3'}")]
    if args.postgres:
        bot_url = stack.enter_context(scratch_postgres(args.postgres_url, "h11bench_"))
        floor_url = stack.enter_context(scratch_postgres(args.postgres_url, "h11bench_"))
        databases.append(("PostgreSQL", bot_url, floor_url))
    for name, bot_url, floor_url in databases:
        if args.floor and not args.burst:
            floor = ServerProcess("floor", floor_url, port=port())
            stack.callback(floor.close)
            targets.append(Target(f"floor ({name})", floor))
        service = BotService(bot_url, folder / name.lower(), port())
        stack.callback(lambda service=service: report_exit(service))
        targets.append(Target(f"run ({name})", service, bot=True))
    if targets and not targets[0].bot:
        stack.callback(targets[0].server.close)
    return targets


def report_exit(service: BotService) -> None:
    code = service.close()
    if code != 0:
        print(f"`run` exited with {code}; the end of its log:\n{service.log.read_text(errors='replace')[-2000:]}",
              file=sys.stderr)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help: the docstring as written (what is measured and how), each option with its default."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="deliveries per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each target once per round, in turn")
    parser.add_argument("--warmup", type=int, default=300, help="deliveries per target before the rounds, not counted")
    parser.add_argument("--duplicates", type=float, default=0.10, help="share of redeliveries (0–1)")
    parser.add_argument("--processes", type=int, default=4, help="load client processes")
    parser.add_argument("--connections", type=int, default=2, help="keep-alive connections per client process")
    parser.add_argument("--postgres", action="store_true", help="also `run` on a scratch PostgreSQL database")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="the server --postgres creates its scratch databases on (h11bench_<random>)")
    parser.add_argument("--floor", action="store_true", help="also a plain Flask view: HMAC check + one INSERT")
    parser.add_argument("--burst", type=int, default=0, metavar="N", help="instead: N-delivery bursts at `run`")
    parser.add_argument("--orders", type=int, default=1000, help="with --burst: distinct orders updated")
    parser.add_argument("--drain-deadline", type=float, default=900.0, help="seconds to wait for the backlog")
    parser.add_argument("--ports", type=int, default=0, metavar="BASE", help="listen on BASE, BASE+1, … (0: free)")
    args = parser.parse_args()
    if not 0 <= args.duplicates < 1 or min(args.requests, args.rounds, args.processes, args.connections,
                                           args.orders) < 1 or args.warmup < 0 or args.burst < 0:
        parser.error("counts must be positive, --duplicates in [0, 1)")

    # A SIGTERM unwinds like Ctrl-C: the services stopped, the scratch databases dropped, the folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as temporary, ExitStack() as stack:
        clients = stack.enter_context(LoadClients(args.processes, args.connections))
        targets = start_targets(args, stack, Path(temporary))
        connections = args.processes * args.connections
        if args.burst:
            ok = burst(args, clients, targets)
        else:
            print(f"{args.requests} signed orders/updated per target and round, {args.duplicates:.0%} redeliveries, "
                  f"{connections} keep-alive connections ({args.processes} processes × {args.connections}); "
                  f"server and client CPU in cores (CPU s / load s; the server's own process, PostgreSQL's not counted)")
            ok = sustained(args, clients, targets)
    if not ok:
        print("FAILED: answers or processing not as expected", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
