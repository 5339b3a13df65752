"""The release gate's HTML report: one self-contained page (inline CSS, no script, no remote resource).

Rendered from Great Expectations' validation results (`ExpectationSuiteValidationResult.to_json_dict()`),
so that a release stays readable offline, in any browser or as plain text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1d232a; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
.badge { display: inline-block; padding: .15em .6em; border-radius: .3em; color: #fff; font-weight: 600; }
.pass { background: #1e7e34; } .fail { background: #c82333; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
ul.failures { background: #fdecea; border-left: 4px solid #c82333; padding: .8em 2em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; width: 100%; margin-top: .5em; }
th, td { border: 1px solid #d0d7de; padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; } tr.ok td.status { color: #1e7e34; } tr.bad { background: #fff5f5; }
tr.bad td.status { color: #c82333; font-weight: 700; } code { font-size: 12.5px; word-break: break-word; }
td.type code { white-space: nowrap; }
"""
_SKIP_KWARGS = ("batch_id",)


def _value(v: Any, limit: int = 160) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _arguments(kwargs: Mapping[str, Any]) -> str:
    return "<br>".join(
        f"<code>{escape(k)} = {escape(_value(v))}</code>" for k, v in kwargs.items() if k not in _SKIP_KWARGS
    )


def _outcome(r: Mapping[str, Any]) -> str:
    """The observed value, or the count, share and examples of unexpected rows."""
    res = r.get("result") or {}
    exc = r.get("exception_info") or {}
    if exc.get("raised_exception"):
        return f"error: {escape(_value(exc.get('exception_message')))}"
    parts = []
    if "observed_value" in res:
        parts.append(f"observed {escape(_value(res['observed_value']))}")
    if "unexpected_count" in res:
        n, total = res["unexpected_count"], res.get("element_count")
        share = res.get("unexpected_percent")
        parts.append(
            f"{n} unexpected of {total} rows" + (f" ({share:.3g} %)" if n and share is not None else "")
        )
        ids = [e["arch_id"] for e in res.get("partial_unexpected_index_list") or [] if isinstance(e, dict)
               and "arch_id" in e]
        if ids:
            parts.append(f"e.g. arch_id {escape(_value(ids[:10]))}")
        elif res.get("partial_unexpected_list"):
            parts.append(f"e.g. {escape(_value(res['partial_unexpected_list'][:10]))}")
    return "<br>".join(parts) or "&nbsp;"


def _suite_section(name: str, res: Mapping[str, Any]) -> str:
    stats = res.get("statistics", {})
    rows = []
    for r in sorted(res.get("results", []), key=lambda r: bool(r.get("success"))):  # failures first
        cfg = r.get("expectation_config", {})
        ok = bool(r.get("success"))
        rows.append(
            f"<tr class='{'ok' if ok else 'bad'}'><td class='status'>{'passed' if ok else 'FAILED'}</td>"
            f"<td class='type'><code>{escape(cfg.get('type', '?'))}</code></td><td>{_arguments(cfg.get('kwargs', {}))}</td>"
            f"<td>{_outcome(r)}</td></tr>"
        )
    ok = bool(res.get("success"))
    return (
        f"<h2 id='{escape(name)}'>{escape(name)} <span class='badge {'pass' if ok else 'fail'}'>"
        f"{stats.get('successful_expectations', 0)} / {stats.get('evaluated_expectations', 0)} passed</span></h2>"
        "<table><thead><tr><th>status</th><th>expectation</th><th>arguments</th><th>result</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(result, results: Mapping[str, Mapping[str, Any]]) -> str:
    """The page for a `nares.validation.ValidationResult` and its per-table GX results."""
    st = result.stats
    verdict = "passed" if result.success else "FAILED"
    meta = {
        "verdict": f"<span class='badge {'pass' if result.success else 'fail'}'>{verdict}</span>",
        "expectations": f"{result.n_expectations} over {result.n_archs} architectures",
        "rows": escape(", ".join(f"{n} {c}" for n, c in st.get("rows", {}).items())),
        "tolerance": escape(str(st.get("tolerance"))),
        "epochs": escape(str(st.get("epochs"))),
        "width base": escape(str(st.get("width_base"))),
        "checkpoint verification": escape(str(st.get("verify_checkpoints"))),
        "arch id map": escape(str(st.get("id_map"))),
        "Great Expectations": escape(
            str(next(iter(results.values()), {}).get("meta", {}).get("great_expectations_version", "?"))
        ),
    }
    failures = (
        "<h2>Failed expectations</h2><ul class='failures'>"
        + "".join(f"<li><code>{escape(f)}</code></li>" for f in result.failures)
        + "</ul>"
        if result.failures
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>NARes release validation: {verdict}</title><style>{_CSS}</style></head><body>"
        f"<h1>NARes release validation</h1><dl class='meta'>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta.items())
        + "</dl>"
        + failures
        + "<nav>" + "".join(f"<a href='#{escape(n)}'>{escape(n)}</a>" for n in results) + "</nav>"
        + "".join(_suite_section(n, r) for n, r in results.items())
        + "<p>Full results: <code>results/&lt;table&gt;.json</code>; summary: <code>summary.json</code>.</p>"
        "</body></html>\n"
    )
