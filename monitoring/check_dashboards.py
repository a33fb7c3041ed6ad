#!/usr/bin/env python3
"""Check Grafana dashboards: their structure, and that every panel query works in Prometheus.

    check_dashboards.py --list DASHBOARD.json...             print the PromQL expressions
    check_dashboards.py --structure-only DASHBOARD.json...   structure only, no Prometheus
    check_dashboards.py [--prometheus URL] DASHBOARD.json... structure, then every expression
                                                             through /api/v1/query

`--expect EXPR=VALUE` first waits until an expression has that value. `--expect-increase
EXPR=DELTA` waits until it has grown by DELTA over the value recorded by an earlier run with
`--write-baseline FILE` (same EXPRs, before the traffic), read back with `--baseline FILE`:
that run waits for a scrape newer than `--after` (a Unix time) and records each EXPR, 0 where
it has no sample yet.

An expression fails when Prometheus answers with an error or with an empty result. The exit
status is 0 when everything passed, 1 when a check failed and 2 for usage or I/O errors.
Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_DATASOURCE_UID = "petal-prometheus"
DEFAULT_PROMETHEUS = os.environ.get("PROMETHEUS_URL", "http://localhost:9090")

# Grafana's built-in interval variables, replaced by fixed values so that an expression using
# them can still be sent to Prometheus. Any other variable is reported as an error.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "15m",
    "__range_s": "900",
    "__range_ms": "900000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


@dataclass
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard}: panel {self.panel!r} query {self.ref_id}"


def load_dashboard(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    # Accept the API's export form too: {"dashboard": {...}, "meta": {...}}.
    if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
        data = data["dashboard"]
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def walk_panels(panels: Any) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels if isinstance(panels, list) else []:
        if not isinstance(panel, dict):
            continue
        yield panel
        yield from walk_panels(panel.get("panels"))


def panel_name(panel: dict[str, Any]) -> str:
    return str(panel.get("title") or f"id {panel.get('id')}")


def queries(path: str, dashboard: dict[str, Any]) -> list[Query]:
    found = []
    for panel in walk_panels(dashboard.get("panels")):
        for target in panel.get("targets") or []:
            if isinstance(target, dict) and str(target.get("expr") or "").strip():
                if target.get("hide"):
                    continue
                found.append(Query(path, panel_name(panel), str(target.get("refId", "?")), target["expr"]))
    return found


def datasource_uid(datasource: Any) -> Any:
    return datasource.get("uid") if isinstance(datasource, dict) else datasource


def check_structure(path: str, dashboard: dict[str, Any], uid: str) -> list[str]:
    """Problems with the dashboard's structure, as readable sentences."""
    problems = []
    for key in ("uid", "title"):
        if not isinstance(dashboard.get(key), str) or not dashboard[key].strip():
            problems.append(f"{path}: no {key}")
    if not isinstance(dashboard.get("panels"), list) or not dashboard["panels"]:
        problems.append(f"{path}: no panels")
        return problems

    seen_ids: dict[Any, str] = {}
    for panel in walk_panels(dashboard["panels"]):
        name = f"{path}: panel {panel_name(panel)!r}"
        kind = panel.get("type")
        if not isinstance(kind, str) or not kind:
            problems.append(f"{name}: no type")

        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or isinstance(panel_id, bool):
            problems.append(f"{name}: id {panel_id!r} is not an integer")
        elif panel_id in seen_ids:
            problems.append(f"{name}: id {panel_id} is already used by panel {seen_ids[panel_id]!r}")
        else:
            seen_ids[panel_id] = panel_name(panel)

        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) for k in "xywh"):
            problems.append(f"{name}: gridPos needs integer x, y, w and h")
        elif grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            problems.append(f"{name}: gridPos {grid} does not fit the 24-column grid")

        # A row holds no query, so it needs no datasource; any other panel must name ours.
        if kind != "row" or "datasource" in panel:
            found = datasource_uid(panel.get("datasource"))
            if found != uid:
                problems.append(f"{name}: datasource uid is {found!r}, expected {uid!r}")

        ref_ids = set()
        for target in panel.get("targets") or []:
            if not isinstance(target, dict):
                problems.append(f"{name}: a target is not an object")
                continue
            ref = target.get("refId")
            if ref in ref_ids:
                problems.append(f"{name}: refId {ref!r} is used twice")
            ref_ids.add(ref)
            if "datasource" in target and datasource_uid(target["datasource"]) != uid:
                problems.append(
                    f"{name}: query {ref}: datasource uid is "
                    f"{datasource_uid(target['datasource'])!r}, expected {uid!r}"
                )
            if not str(target.get("expr") or "").strip():
                problems.append(f"{name}: query {ref} has no expr")
    return problems


def substitute_variables(expr: str) -> tuple[str, list[str]]:
    """The expression with Grafana's interval variables replaced, and any unknown variables."""
    unknown = []

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in GRAFANA_VARIABLES:
            return GRAFANA_VARIABLES[name]
        unknown.append(name)
        return match.group(0)

    return VARIABLE.sub(replace, expr), unknown


def one_line(expr: str) -> str:
    return " ".join(expr.split())


def evaluate(base_url: str, expr: str, timeout: float) -> tuple[int | None, str]:
    """(number of series, "") on success, (None, reason) on failure."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        # Prometheus explains a bad query in a JSON body on 400 and 422.
        try:
            body = json.load(e)
        except (ValueError, OSError):
            return None, f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, f"cannot query Prometheus at {base_url}: {e}"

    if body.get("status") != "success":
        return None, f"{body.get('errorType', 'error')}: {body.get('error', 'no error message')}"
    data = body.get("data") or {}
    result_type, result = data.get("resultType"), data.get("result")
    if result_type in ("vector", "matrix"):
        count = len(result or [])
    elif result_type in ("scalar", "string"):
        count = 1
    else:
        return None, f"unexpected result type {result_type!r}"
    if count == 0:
        return None, "empty result"
    return count, ""


def single_value(base_url: str, expr: str, timeout: float) -> float | None:
    """The value of an expression that yields exactly one sample, else None."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            result = (json.load(response).get("data") or {}).get("result") or []
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if len(result) != 1:
        return None
    return float(result[0]["value"][1])


def parse_expectations(items: list[str]) -> list[tuple[str, float]]:
    """`EXPR=NUMBER` pairs; the last `=` splits them, since EXPR may hold `=` itself."""
    pairs = []
    for item in items:
        expr, _, value = item.rpartition("=")
        pairs.append((expr.strip(), float(value)))
    return pairs


def write_baseline(path: str, exprs: list[str], base_url: str, timeout: float, after: float, wait: float) -> int:
    """Record each expression's value from the first petal scrape newer than `after`."""
    deadline = time.monotonic() + wait
    while (single_value(base_url, 'max(timestamp(up{job="petal"}))', timeout) or 0.0) <= after:
        if time.monotonic() >= deadline:
            print(f"no scrape of petal newer than {after} within {wait:g} s", file=sys.stderr)
            return 1
        time.sleep(0.5)
    values = {expr: single_value(base_url, expr, timeout) or 0.0 for expr in exprs}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(values, out, indent=1)
    for expr, value in values.items():
        print(f"baseline  {expr} = {value:g}")
    return 0


def check_expectations(wanted: list[tuple[str, float]], base_url: str, timeout: float, wait: float) -> int:
    """Wait until every `(EXPR, VALUE)` holds; fail listing those that never did."""
    deadline = time.monotonic() + wait
    while True:
        got = {expr: single_value(base_url, expr, timeout) for expr, _ in wanted}
        wrong = [(expr, value) for expr, value in wanted if got[expr] != value]
        if not wrong or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    for expr, value in wanted:
        mark = "ok  " if (expr, value) not in wrong else "FAIL"
        print(f"{mark}  {expr} = {got[expr]} (expected {value:g})")
    return 1 if wrong else 0


def run_queries(found: list[Query], base_url: str, timeout: float, wait: float) -> int:
    """Evaluate every query, retrying failures until `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    pending = list(found)
    results: dict[int, tuple[int | None, str]] = {}
    while True:
        for query in pending:
            expr, unknown = substitute_variables(query.expr)
            if unknown:
                results[id(query)] = (None, "unknown dashboard variables: " + ", ".join(sorted(set(unknown))))
            else:
                results[id(query)] = evaluate(base_url, expr, timeout)
        pending = [q for q in pending if results[id(q)][0] is None]
        if not pending or time.monotonic() >= deadline:
            break
        print(f"{len(pending)} expression(s) failing; retrying...", file=sys.stderr)
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))

    for query in found:
        count, _ = results[id(query)]
        status = f"{count:>4} series" if count is not None else "  FAILED   "
        print(f"{status}  [{query.panel} / {query.ref_id}]  {one_line(query.expr)}")
    if pending:
        print(f"\n{len(pending)} of {len(found)} expression(s) failed:", file=sys.stderr)
        for query in pending:
            print(f"  {query.where}: {results[id(query)][1]}\n    {one_line(query.expr)}", file=sys.stderr)
        return 1
    print(f"\nall {len(found)} expression(s) returned data")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dashboards", nargs="+", metavar="DASHBOARD.json")
    parser.add_argument("--prometheus", default=DEFAULT_PROMETHEUS, metavar="URL",
                        help="Prometheus base URL (default: $PROMETHEUS_URL or %(default)s)")
    parser.add_argument("--datasource-uid", default=DEFAULT_DATASOURCE_UID,
                        help="uid every panel must use (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="only print the expressions, one a line")
    mode.add_argument("--structure-only", action="store_true",
                      help="check the dashboards' structure without querying Prometheus")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per query (default: 10)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="keep retrying failing expressions for this long (default: 0)")
    parser.add_argument("--expect", action="append", default=[], metavar="EXPR=VALUE",
                        help="before the panels, wait until EXPR has exactly one sample equal to VALUE")
    parser.add_argument("--expect-increase", action="append", default=[], metavar="EXPR=DELTA",
                        help="like --expect, for VALUE = the --baseline value of EXPR + DELTA")
    parser.add_argument("--baseline", metavar="FILE", help="values written by --write-baseline")
    parser.add_argument("--write-baseline", metavar="FILE",
                        help="record the --expect-increase expressions' values and stop")
    parser.add_argument("--after", type=float, default=0.0, metavar="UNIX_TIME",
                        help="with --write-baseline: wait for a scrape of petal newer than this")
    args = parser.parse_args(argv)

    increases = parse_expectations(args.expect_increase)
    if args.write_baseline:
        exprs = [expr for expr, _ in increases]
        return write_baseline(args.write_baseline, exprs, args.prometheus, args.timeout, args.after, max(args.wait, 30.0))
    wanted = parse_expectations(args.expect)
    if increases:
        if not args.baseline:
            print("--expect-increase needs --baseline (written by --write-baseline)", file=sys.stderr)
            return 2
        with open(args.baseline, encoding="utf-8") as baseline_file:
            baseline = json.load(baseline_file)
        wanted += [(expr, baseline.get(expr, 0.0) + delta) for expr, delta in increases]

    dashboards = []
    for path in args.dashboards:
        try:
            dashboards.append((path, load_dashboard(path)))
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read dashboard: {e}", file=sys.stderr)
            return 2
    found = [q for path, dashboard in dashboards for q in queries(path, dashboard)]

    if args.list:
        for query in found:
            print(one_line(query.expr))
        return 0

    problems = [p for path, dashboard in dashboards for p in check_structure(path, dashboard, args.datasource_uid)]
    if not found:
        problems.append("no PromQL expressions found in " + ", ".join(args.dashboards))
    if problems:
        print(f"{len(problems)} structure problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"structure OK: {len(dashboards)} dashboard(s), {len(found)} expression(s)")
    if args.structure_only:
        return 0
    if wanted and check_expectations(wanted, args.prometheus, args.timeout, args.wait):
        return 1
    return run_queries(found, args.prometheus, args.timeout, args.wait)


if __name__ == "__main__":
    sys.exit(main())
