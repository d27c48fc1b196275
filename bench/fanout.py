"""Benchmark: one message to 100 friends (a sender's daily maximum) through the Kakao stand-in.

The Kakao stand-in runs in its own process (spawned, its own GIL: bench/standin.py), so its CPU
is not counted as the bot's; it answers every Kakao call LATENCY seconds after its server read the
call's first bytes, its own work included (`answered_after`: the floor counts each call as LATENCY), and it enforces
Kakao's daily caps (100 messages per sender, 100 per receiver, 20 per sender-receiver pair). The
scraped menu page is served from another process (waitress, keep-alive, like the real hosts). One
bot (App: database, engine, HTTP sessions) does every run, as the service does its slots; each run
is a new day (the stand-in's caps and the bot's quota book start again) timed around one
`Runner.run` of the job. The process's first fan-out pays one-time costs (imports, connections,
statements compiled once per engine): it is printed apart and not judged.

The floor counts only the calls that can be made, one after another: the friends-list pages
(ceil(friends / 100), every nickname must be resolved) plus ceil(sendable / 5) send calls, where
sendable = min(friends, the sender's daily cap); a fan-out to 1,000 friends can send only 100
messages today, so its floor is 10 pages + 20 sends, each LATENCY. Before each run, on a day of
its own, a bare client (a keep-alive `requests` session making the same calls and nothing else)
measures what those calls take against this stand-in: its HTTP server, the loopback and `requests`
add their own time to every call, which the bot's client (also `requests`) cannot save either.
Printed next to the floor, not judged.

Printed per run: messages delivered (goal: all sendable), the Kakao calls made next to the floor's,
wall time and its ratio to the floor (goal, at 100 friends and 50 ms: ≤ 1.1×) and to the bare
client's time, how long the stand-in's server really held each call (first bytes read → answer
written out; `answered_after` aims at LATENCY), the bot's own time per Kakao call beyond the stand-in's
latency ((wall − calls made × latency) / calls made: all the run's own work, the scrape
included) and how much of it the commits of outcomes take (each call's `sending`, with the
outcome of the call before, on disk before it goes out), and the bot process's and the
stand-in's CPU per call; then min / median / max over the runs.

    python bench/fanout.py [--friends 100] [--runs 3] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

import requests
from cryptography.fernet import Fernet
from sqlalchemy import text

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.delivery.runner import Runner
from bot.store.deliveries import DeliveryLog
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.web import DEMO_MENU_HTML, create_web_app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standin import StandinProcess, answered_after, cpu_seconds, spread  # noqa: E402

SEND_PATH = "/v1/api/talk/friends/message/default/send"
FRIENDS_PATH = "/v1/api/talk/friends"
PAGE = 100  # friends per friends-list page, Kakao's maximum
PER_CALL = 5  # receivers per send call
GOAL = 1.1

CONFIG = """\
[database]
url = "sqlite:///{db}"

[delivery]
quota_reserve = 0   # the whole daily quota goes to friends in this benchmark

[kakao]
redirect_uri = "http://127.0.0.1:8080/kakao/callback"
auth_url = "{kakao}"
api_url = "{kakao}"
web_domain = "{web}"

[[jobs]]
name = "menu"
kind = "scrape"
url = "{web}/menu"
select = "ul.menu > li"
at = ["noon"]
to = [{to}]
"""


def build_kakao(args: dict[str, Any]) -> tuple[KakaoSandbox, Any, dict[str, Any]]:
    """In the Kakao stand-in's process: the app with its friends; greets with its keys and caps."""
    sandbox = KakaoSandbox()  # its latency is answered_after's: its own work included
    for nickname in args["nicknames"]:
        sandbox.add_friend(nickname)
    greeting = {"rest_api_key": sandbox.rest_api_key, "client_secret": sandbox.client_secret or "",
                "sender_daily": sandbox.sender_daily}
    return sandbox, answered_after(sandbox.wsgi_app(), args["latency"]), greeting


def build_web(args: dict[str, Any]) -> tuple[None, Any, None]:
    """In the web stand-in's process: the menu page the job scrapes."""
    return None, create_web_app({"/menu": DEMO_MENU_HTML}), None


def issue_code(sandbox: KakaoSandbox, redirect_uri: str) -> str:
    """A query: an authorization code as if the owner had just consented."""
    return sandbox.issue_code(redirect_uri)


def tally(sandbox: KakaoSandbox, payload: Any = None) -> dict[str, int]:
    """A query: Kakao calls made so far, by kind, and the messages friends have received."""
    return {"calls": len(sandbox.calls), "sends": sandbox.count(SEND_PATH), "pages": sandbox.count(FRIENDS_PATH),
            "delivered": sum(len(sandbox.received(uuid)) for uuid in sandbox.friends)}


def new_day(sandbox: KakaoSandbox, payload: Any = None) -> None:
    """A query: the stand-in's daily caps start again."""
    sandbox.new_day()


@contextmanager
def deployment(args: argparse.Namespace, nicknames: list[str], web_url: str) -> Iterator[tuple[App, StandinProcess]]:
    """One bot (App: database, engine, HTTP sessions, as in the service) logged in at one Kakao stand-in."""
    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    try:
        with StandinProcess(build_kakao, {"latency": args.latency, "nicknames": nicknames},
                            port=args.port + 1 if args.port else 0, name="kakao-standin") as kakao:
            to = ", ".join(f'"friend:{nickname}"' for nickname in nicknames)
            config_path = folder / "config.toml"
            config_path.write_text(CONFIG.format(db=folder / "bench.sqlite3", kakao=kakao.url, web=web_url, to=to),
                                   encoding="utf-8")
            secrets = Secrets({"BOT_SECRET_KEY": Fernet.generate_key().decode(),
                               "KAKAO_REST_API_KEY": kakao.greeting["rest_api_key"],
                               "KAKAO_CLIENT_SECRET": kakao.greeting["client_secret"]})
            app = App(load_config(config_path), secrets)
            app.db.migrate()
            code = kakao.ask(issue_code, app.config.kakao.redirect_uri)
            app.kakao_tokens.store_login("default", app.kakao_auth.exchange_code(code))
            try:
                yield app, kakao
            finally:
                app.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bare_calls(app: App, kakao: StandinProcess, sendable: int) -> float:
    """Seconds a client doing nothing but the calls takes (on a new day): the friends-list pages, then
    the sends of `sendable` messages, 5 receivers each, a text message the size of the menu's."""
    kakao.ask(new_day)
    headers = {"Authorization": f"Bearer {app.kakao_tokens.access_token('default')}"}
    template = json.dumps({"object_type": "text", "text": "오늘의 메뉴\n" + "김치찌개 · 된장찌개 · 비빔밥\n" * 8,
                           "link": {"web_url": app.config.kakao.web_domain}}, ensure_ascii=False)
    api, uuids = app.config.kakao.api_url, []
    with requests.Session() as session:
        started = time.perf_counter()
        page: str | None = f"{api}{FRIENDS_PATH}?limit={PAGE}"
        while page:
            answer = session.get(page, headers=headers, timeout=10).json()
            uuids += [friend["uuid"] for friend in answer.get("elements") or []]
            page = answer.get("after_url")
        for start in range(0, sendable, PER_CALL):
            session.post(f"{api}{SEND_PATH}", headers=headers, timeout=10, data={
                "receiver_uuids": json.dumps(uuids[start:start + PER_CALL]),
                "template_object": template}).raise_for_status()
        return time.perf_counter() - started


class CommitTimer:
    """Wall time of a fan-out's commits of outcomes (`DeliveryLog.record`: the outcome of one call and
    `sending` of the next, on disk before the next call goes out): what exactly-once costs per call."""

    def __init__(self, log: DeliveryLog):
        self.seconds, self.count = 0.0, 0
        record = log.record

        def timed(*args: Any, **kwargs: Any) -> set[int]:
            started = time.perf_counter()
            try:
                return record(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.count += 1

        log.record = timed  # type: ignore[method-assign] - this App's log only, for the benchmark's figures

    def reset(self) -> None:
        self.seconds, self.count = 0.0, 0


def one_run(app: App, kakao: StandinProcess, run: int, commits: CommitTimer) -> dict[str, Any]:
    """One fan-out on a new day (the stand-in's caps and the bot's quota book start again): its figures."""
    kakao.ask(new_day)
    with app.db.engine.begin() as connection:  # the bot's per-day counts come from the deliveries kept
        connection.execute(text("DELETE FROM deliveries"))
    before, standin_cpu, held_from = kakao.ask(tally), kakao.ask(cpu_seconds), len(kakao.held())
    commits.reset()
    cpu = time.process_time()
    started = time.perf_counter()
    report = Runner(app).run(app.config.job("menu"), f"bench-{run}")
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    standin_cpu = kakao.ask(cpu_seconds) - standin_cpu
    held = kakao.held(held_from)
    after = kakao.ask(tally)
    made = {k: after[k] - before[k] for k in ("calls", "sends", "pages", "delivered")}
    return dict(made, wall=wall, cpu=cpu, standin_cpu=standin_cpu, commits=commits.count, commit_s=commits.seconds,
                recorded=report.fanout.count("sent") if report.fanout else 0, sender_daily=kakao.greeting["sender_daily"],
                held_ms=statistics.median(held) * 1000, held_max_ms=max(held) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--friends", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--port", type=int, default=0, help="first stand-in port (0: any free ones)")
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings (one per friend over the cap)")
    args = parser.parse_args()
    if not args.verbose:  # still formatted and written, as by a service's log handler, but not shown
        logging.basicConfig(stream=open(os.devnull, "w"), level=logging.WARNING)

    nicknames = [f"직원{i:03d}" for i in range(args.friends)]
    pages = math.ceil(args.friends / PAGE)
    runs: list[dict[str, Any]] = []
    with StandinProcess(build_web, {}, port=args.port, name="web-standin") as web, \
            deployment(args, nicknames, web.url) as (app, kakao):
        commits = CommitTimer(app.deliveries)
        for run in range(args.runs + 1):  # run 0: the process's first fan-out, reported, not judged
            sendable = min(args.friends, kakao.greeting["sender_daily"])
            bare = bare_calls(app, kakao, sendable)
            r = one_run(app, kakao, run, commits)
            floor_calls = pages + math.ceil(sendable / PER_CALL)
            r.update(sendable=sendable, floor_calls=floor_calls, floor=floor_calls * args.latency, bare=bare)
            r["ratio"] = r["wall"] / r["floor"]
            r["own_ms"] = (r["wall"] - r["calls"] * args.latency) / r["calls"] * 1000
            runs.append(r)
            name = "first (cold)" if run == 0 else f"run {run}"
            print(f"{name}: delivered {r['delivered']}/{sendable} sendable ({r['recorded']} recorded sent; "
                  f"{args.friends} friends, sender cap {r['sender_daily']}/day); Kakao calls {r['calls']} = "
                  f"{r['pages']} pages + {r['sends']} sends (floor {floor_calls} = {pages} + "
                  f"{math.ceil(sendable / PER_CALL)})")
            print(f"        wall {r['wall']:.3f} s, floor {r['floor']:.3f} s = {floor_calls} x "
                  f"{args.latency * 1000:.0f} ms: {r['ratio']:.3f}x (a bare client: {bare:.3f} s, "
                  f"{r['wall'] / bare:.3f}x that); bot's own time {r['own_ms']:.2f} ms per "
                  f"Kakao call, of which commits {r['commit_s'] / r['calls'] * 1000:.2f} ms ({r['commits']} commits, "
                  f"{r['commit_s'] / r['commits'] * 1000:.2f} ms each); CPU per call: bot "
                  f"{r['cpu'] / r['calls'] * 1000:.2f} ms, stand-in {r['standin_cpu'] / r['calls'] * 1000:.2f} ms; "
                  f"the stand-in held each call {r['held_ms']:.2f} ms (median; max {r['held_max_ms']:.2f} ms)")
    cold, runs = runs[0], runs[1:]
    print(f"friends {args.friends}, {args.latency * 1000:.0f} ms per Kakao call, {len(runs)} runs after the first "
          f"(stand-ins in their own processes):")
    print(f"  wall time:             {spread([r['wall'] for r in runs], unit=' s')}")
    print(f"  ratio to the floor:    {spread([r['ratio'] for r in runs], unit='x')} (goal ≤ {GOAL}x)")
    print(f"  a bare client's calls: {spread([r['bare'] for r in runs], unit=' s')} = "
          f"{spread([r['bare'] / r['floor'] for r in runs], unit='x')} the floor (the stand-in's own time per call); "
          f"the bot: {spread([r['wall'] / r['bare'] for r in runs], unit='x')} the bare client")
    print(f"  bot's own time / call: {spread([r['own_ms'] for r in runs], '{:.2f}', ' ms')} beyond the "
          f"stand-in's {args.latency * 1000:.0f} ms, of which the commits of outcomes and `sending` "
          f"{spread([r['commit_s'] / r['calls'] * 1000 for r in runs], '{:.2f}', ' ms')} (each on disk before "
          f"the next call: exactly once)")
    print(f"  CPU / call:            {spread([r['cpu'] / r['calls'] * 1000 for r in runs], '{:.2f}', ' ms')} bot, "
          f"{spread([r['standin_cpu'] / r['calls'] * 1000 for r in runs], '{:.2f}', ' ms')} stand-in")
    print(f"  stand-in held a call:  {spread([r['held_ms'] for r in runs], '{:.2f}', ' ms')} (median of a run; "
          f"first bytes read → answer written out), against the {args.latency * 1000:.0f} ms the floor counts")
    print(f"  first fan-out (cold):  {cold['wall']:.3f} s = {cold['ratio']:.3f}x the floor (imports, connections, "
          f"statements compiled once per process)")
    delivered = all(r["delivered"] == r["sendable"] for r in [cold, *runs])
    return 0 if delivered and max(r["ratio"] for r in runs) <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
