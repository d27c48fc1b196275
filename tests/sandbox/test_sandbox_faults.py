"""Scripted faults and the request log every stand-in shares: matching, order, use-once, clearing."""

from __future__ import annotations

import operator
import time

from bot.sandbox.faults import Fault, FaultPlan
from bot.sandbox.recording import RequestLog


def test_faults_are_played_once_each_in_order_for_matching_paths_only() -> None:
    plan = FaultPlan(matches=str.endswith)
    plan.fail_next("/graphql.json", 500, {"errors": "x"}, times=2)
    plan.fail_next("/graphql.json", 503, {"errors": "y"}, headers={"Retry-After": "1"})
    assert plan.play("/shop/admin/oauth/access_token", 0.0) is None
    played = [plan.play("/shop/admin/api/2025-10/graphql.json", 0.0) for _ in range(4)]
    assert played == [Fault(500, {"errors": "x"}), Fault(500, {"errors": "x"}),
                      Fault(503, {"errors": "y"}, {"Retry-After": "1"}), None]


def test_exact_matching_ignores_other_paths_with_the_same_ending() -> None:
    plan = FaultPlan(matches=operator.eq)
    plan.fail_next("/send", 400, {})
    assert plan.play("/v2/api/talk/memo/default/send", 0.0) is None
    assert plan.play("/send", 0.0) == Fault(400, {})


def test_a_hang_delays_one_request_and_clear_forgets_what_was_not_played() -> None:
    plan = FaultPlan(matches=operator.eq)
    plan.hang_next("/a", 0.2)
    started = time.monotonic()
    assert plan.play("/a", 0.0) is None
    assert time.monotonic() - started >= 0.2
    plan.hang_next("/a", 5.0)
    plan.fail_next("/a", 500, {})
    plan.clear()
    started = time.monotonic()
    assert plan.play("/a", 0.0) is None and time.monotonic() - started < 1.0


def test_the_request_log_counts_by_path_suffix() -> None:
    log = RequestLog()
    log.record("POST", "/oauth/token")
    log.record("GET", "/v1/api/talk/friends")
    assert log.calls == [("POST", "/oauth/token"), ("GET", "/v1/api/talk/friends")]
    assert log.count("/token") == 1 and log.count("/nothing") == 0
