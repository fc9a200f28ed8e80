"""Judge selftest results: what passes on the base kernel (vanilla) and fails on another one.

Pure functions over the results frame `harness selftests` writes (results.csv): one
row per (variant, topology, test, subtest), subtest "" being the whole program.
"""

from __future__ import annotations

import pandas as pd

from harness.selftests.tap import PASS, SKIP, XFAIL, XPASS
from harness.table import render_table

#: a test the harness did not get to run (its guest failed to boot or was stopped)
NOT_RUN = "not run"
#: a program that failed, and passed when run again in the same guest (run._attempts)
FLAKY = "flaky"
COLUMNS = ("variant", "topology", "test", "subtest", "result", "reason", "seconds", "status", "attempts")
KEY = ["topology", "test", "subtest"]
_PASSING = frozenset({PASS, XFAIL, XPASS})

REGRESSION, FIXED, SAME, BOTH_FAIL, SKIPPED, INCOMPLETE, UNSTABLE = (
    "regression", "fixed", "same", "fails on both", "skipped", "not run", "flaky")


def results_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for text in ("subtest", "reason"):
        frame[text] = frame[text].astype(object).fillna("").astype(str)
    return frame


def judge(base: str | None, other: str | None) -> str:
    """The verdict for one test given its result on the base variant and on another (None: no such row)."""
    if base == NOT_RUN or other == NOT_RUN:
        return INCOMPLETE
    if base == SKIP or other == SKIP:
        return SKIPPED
    if base == FLAKY or other == FLAKY:
        return UNSTABLE  # it passes on that kernel too, sometimes: not a verdict either way
    base_ok = base in _PASSING
    other_ok = other in _PASSING
    if base_ok and not other_ok:
        return REGRESSION  # a failure, or the row is missing: the program stopped before it
    if base is None:
        return SAME if other_ok else BOTH_FAIL  # a subtest only the other kernel printed
    if not base_ok and other_ok:
        return FIXED
    return SAME if base_ok else BOTH_FAIL


def compare(results: pd.DataFrame, base: str) -> pd.DataFrame:
    """One row per (other variant, topology, test, subtest): both results and the verdict.

    Subtests are matched by their number and name (see run._rows); a program whose
    subtests are missing on one side (it crashed before them) shows them as regressions
    where the base passed them.
    """
    variants = [v for v in dict.fromkeys(results["variant"]) if v != base]
    base_rows = results[results["variant"] == base].set_index(KEY)
    out = []
    for v in variants:
        mine = results[results["variant"] == v].set_index(KEY)
        for key in dict.fromkeys([*base_rows.index, *mine.index]):
            b = base_rows.loc[key] if key in base_rows.index else None
            m = mine.loc[key] if key in mine.index else None
            b_res = None if b is None else b["result"]
            m_res = None if m is None else m["result"]
            if key[2] and b is not None and m is None and _program_result(mine, key) == NOT_RUN:
                m_res = NOT_RUN
            out.append({"variant": v, "topology": key[0], "test": key[1], "subtest": key[2],
                        "base": b_res or "-", "result": m_res or "-", "verdict": judge(b_res, m_res),
                        "reason": (m["reason"] if m is not None and m["result"] != PASS else
                                   b["reason"] if b is not None and b["result"] != PASS else "")})
    return pd.DataFrame(out, columns=["variant", "topology", "test", "subtest", "base", "result", "verdict",
                                      "reason"])


def _program_result(rows: pd.DataFrame, key: tuple[str, str, str]) -> str | None:
    whole = (key[0], key[1], "")
    return str(rows.loc[whole, "result"]) if whole in rows.index else None


def regressions(verdicts: pd.DataFrame) -> pd.DataFrame:
    return verdicts[verdicts["verdict"] == REGRESSION]


def render(results: pd.DataFrame, verdicts: pd.DataFrame, base: str) -> str:
    """The table a developer reads: per topology and program, each variant's result and time, the verdict.

    Then the failing subtests behind each regression, and every skip with its reason.
    """
    variants = list(dict.fromkeys(results["variant"]))
    progs = results[results["subtest"] == ""]
    header = ("topology", "test", *(f"{v}" for v in variants), *(f"{v} s" for v in variants), "verdict")
    rows: list[tuple[object, ...]] = [header]
    for (topo, test), group in progs.groupby(["topology", "test"], sort=False):
        by = group.set_index("variant")
        cells = [by.loc[v, "result"] if v in by.index else "-" for v in variants]
        secs = [f"{by.loc[v, 'seconds']:.1f}" if v in by.index and pd.notna(by.loc[v, "seconds"]) else "-"
                for v in variants]
        mine = verdicts[(verdicts["topology"] == topo) & (verdicts["test"] == test)]
        worst = _worst(mine["verdict"]) if len(mine) else SAME
        rows.append((topo, test, *cells, *secs, worst))
    lines = [render_table(rows, right=set(range(2 + len(variants), 2 + 2 * len(variants))))]
    bad = regressions(verdicts)
    if len(bad):
        lines.append(f"\n{len(bad)} regression(s) against {base}:")
        for r in bad.to_dict("records"):
            what = f"{r['test']} {r['subtest']}".strip()
            lines.append(f"  {r['variant']} on {r['topology']}: {what}: {r['base']} -> {r['result']}"
                         + (f" ({r['reason']})" if r["reason"] else ""))
    skips = results[(results["result"].isin([SKIP, NOT_RUN, FLAKY])) & (results["subtest"] == "")]
    if len(skips):
        lines.append("\nskipped, flaky or not run:")
        for r in skips.to_dict("records"):
            lines.append(f"  {r['variant']} on {r['topology']}: {r['test']}: {r['result']}: {r['reason']}")
    return "\n".join(lines)


_ORDER = (REGRESSION, INCOMPLETE, FIXED, BOTH_FAIL, UNSTABLE, SAME, SKIPPED)


def _worst(verdicts: pd.Series) -> str:
    present = set(verdicts)
    return next((v for v in _ORDER if v in present), SAME)

