"""The course report: OUT/report.html, read top to bottom.

  header       profile, total time, and what a trimmed profile changed in each notebook, with its reason
  comparison   notebook 07: per attack, mean ± std over seeds [interval], chosen settings, verdicts and
               conclusions, what a trimmed run left out, and its Pareto plot (redrawn here)
  notebooks    one section each: status and time, headline figures (course/headlines.py), main figure
               (course/report_figures.py), a link to the executed notebook, the raw record (collapsed)
  environment  collapsed
"""

import html
import json
import math
from pathlib import Path

from safelora_lite.comparison.protocol import mean_interval, setting_text
from safelora_lite.course.course_map import COURSE
from safelora_lite.course.headlines import fmt_rate, headline_html
from safelora_lite.course.report_figures import notebook_figures, pareto_png
from safelora_lite.evaluation.generation import RATES
from safelora_lite.course.profiles import load_profile
from safelora_lite.course.run_times import minutes
from safelora_lite.errors import InputError

COMPARISON = "07_comparison"
TITLES = {stem: (number, title, teaches) for number, stem, title, teaches, *_ in COURSE}
STYLE = """body{font-family:system-ui,sans-serif;max-width:74em;margin:auto;padding:0 1em;line-height:1.4;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em;display:block;width:max-content;max-width:100%;overflow-x:auto}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #e3e3e3;vertical-align:top}
table.figures th{font-weight:normal;color:#555}.num{text-align:right;font-variant-numeric:tabular-nums}td.num{white-space:nowrap}
.name{white-space:nowrap}
section{border-top:2px solid #ccc;margin-top:2em}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}
.note{color:#666;font-size:.9em}pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:.85em;max-height:40em}
pre.bad{white-space:pre-wrap}summary{cursor:pointer;color:#0b57d0}img{max-width:100%;border:1px solid #eee}figcaption{color:#666;font-size:.9em}"""


def load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def results_of(out: Path, run: dict) -> dict | None:
    """What a notebook recorded in this run (looked up under OUT, so a moved course folder still reads)."""
    return load_json(out / "results" / f"{run['notebook']}.json") if run.get("results") else None


def status_html(run: dict) -> str:
    return f'<span class="{"ok" if run["status"] == "ok" else "bad"}">{html.escape(run["status"])}</span>'


def title_of(stem: str) -> str:
    number, title, _ = TITLES.get(stem, (stem[:2], stem, ""))
    return f"{number} {title}"


def known_profile(name: str | None) -> dict | None:
    """The profile a course ran with, if this checkout still has it (its reasons go in the header)."""
    try:
        return load_profile(name) if name else None
    except InputError:
        return None


def header_html(summary: dict) -> str:
    """Profile and time in a sentence, then every notebook: status, time, what the profile changed and why."""
    runs, name = summary["runs"], summary.get("profile")
    profile = known_profile(name)
    failed = [r["notebook"] for r in runs if r["status"] != "ok"]
    lines = [f"profile <code>{html.escape(name)}</code>: parameters that differ from the notebooks' defaults, "
             "with their reasons below" if name else "every notebook with its own defaults (no profile)"]
    if "wall_seconds" in summary:
        lines.append(f"{minutes(summary['wall_seconds'])} in all ({summary['wall_seconds']} s), "
                     f"{summary.get('jobs', 1)} notebook(s) at once after the setup")
    for built in summary.get("prebuilds", []):
        what = f"{html.escape(built['what'])} for {html.escape(built['notebook'])}"
        if built["status"] != "ok":
            lines.append(f'<span class="bad">building {what} before the others failed</span> (the notebook tried again)')
        elif built["threads"]:
            lines.append(f"after the setup, {what} was built alone on {built['threads']} threads ({minutes(built['seconds'])})")
        else:
            lines.append(f"{what} was already in the cache")
    for grant in summary.get("thread_grants", []):
        lines.append(f"after {minutes(grant['after_seconds'])} the idle cores went to {html.escape(', '.join(grant['notebooks']))} "
                     f"({grant['threads']} threads for a real model)")
    lines.append(f"{len(runs)} notebooks, " + (f'<span class="bad">not ok: {", ".join(failed)}</span>' if failed else "all ok"))
    if "consistency" in summary:
        shared, differ = summary["consistency"]["models_in_several_notebooks"], summary["consistency"]["disagreements"]
        lines.append(f"one evaluation set: {shared} model(s) evaluated in two notebooks or more, "
                     + (f'<span class="bad">{len(differ)} read different rates</span>' if differ else "each read the same rates everywhere"))
    why = (profile or {}).get("why", {})
    rows = "".join(
        f'<tr><td class="name"><a href="#{r["notebook"]}">{html.escape(title_of(r["notebook"]))}</a></td><td>{status_html(r)}</td>'
        f'<td class="num">{minutes(r["seconds"])}</td><td><code>{html.escape(compact(r.get("parameters") or {}))}</code></td>'
        f'<td>{html.escape(why.get(r["notebook"], ""))}</td></tr>' for r in runs)
    note = f'<p class="note">{html.escape(profile["note"])}</p>' if profile and profile.get("note") else ""
    return (f"<p>{'; '.join(lines)}.</p>{note}<table><tr><th>notebook</th><th>status</th><th>time</th>"
            f"<th>parameters set</th><th>why (from the profile)</th></tr>{rows}</table>")


def compact(params: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def comparison_html(out: Path) -> str:
    """Notebook 07 per attack: mean ± std over seeds [95% interval], each method's chosen setting, its verdict and
    the Pareto front, the computed conclusions, what a trimmed run left out, and the Pareto plot."""
    record = load_json(out / "results" / f"{COMPARISON}.json")
    if record is None or not record.get("summary"):
        return "<p>Notebook 07 (comparison) has not recorded results in this course run.</p>"
    summary, fronts, verdicts = record["summary"], record.get("pareto_front", {}), record.get("verdicts", {})
    numbers: dict[str, int] = {}
    for methods in summary.values():
        for m in methods:
            numbers.setdefault(m, len(numbers) + 1)
    parts = [(f"<p>protocol <code>{html.escape(record['protocol'])}</code>, overrides "
             f"<code>{html.escape(compact(record.get('overrides', {})))}</code>. Each cell: mean ± std over seeds "
             "[95% Wilson interval over the test prompts]; # is the method's number in the plot.</p>")]
    if record.get("run_note"):
        parts.append(f"<p><b>{html.escape(record['run_note'])}.</b></p>")
    if record.get("selection_rule"):
        parts.append(f"<p>Settings chosen on the validation split by one rule: {html.escape(record['selection_rule'])}.</p>")
    head = "".join(f'<th class="num">{r.replace("_", " ")}</th>' for r in RATES)
    for attack, methods in summary.items():
        body = "".join(
            f'<tr><td class="num">{numbers[m]}</td><td>{html.escape(m)}</td><td>{html.escape(setting_text(s.get("chosen", [])))}</td>'
            + "".join(f'<td class="num">{rate_cell(s[r])}</td>' for r in RATES)
            + f'<td class="num">{s["seconds"]:.1f}</td><td>{"yes" if m in fronts.get(attack, []) else ""}</td>'
            f'<td>{verdict(verdicts.get(attack, {}).get(m))}</td></tr>' for m, s in methods.items())
        said = "".join(f"<li>{html.escape(line)}</li>" for line in record.get("conclusions", {}).get(attack, []))
        parts.append(f"<h3>attack: {html.escape(attack)}</h3><table><tr><th>#</th><th>method</th><th>setting</th>{head}"
                     f"<th class='num'>extra s</th><th>Pareto front</th><th>verdict (comparison/verdicts.py)</th></tr>{body}</table>"
                     + (f"<p>What the numbers say (computed by the notebook):</p><ul>{said}</ul>" if said else ""))
    parts.append(f'<figure><img alt="Pareto plot: task accuracy against refusal rate" '
                 f'src="data:image/png;base64,{pareto_png(summary, fronts, numbers)}"><figcaption>Up and to the right '
                 "is better. Error bars: std over seeds; ringed: on the Pareto front (no other method better on both). "
                 f"Drawn by the report from results/{COMPARISON}.json, with numbers instead of names so that close "
                 "points stay legible.</figcaption></figure>")
    return "".join(parts)


def rate_cell(stats: dict) -> str:
    """mean ± std over seeds, and the Wilson interval where the record has the prompt counts."""
    interval = mean_interval(stats)
    return fmt_rate(stats) + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def verdict(v: dict | None) -> str:
    """Notebook 07's verdict against plain LoRA (comparison/verdicts.py): refusal gained, task kept, whether it helps."""
    if not v:
        return ""
    known = v["task_kept"] is not None and math.isfinite(v["task_kept"])  # a record holds NaN as null
    kept = f"{v['task_kept']:.0%}" if known else "n/a (no task accuracy to keep)"
    return f"refusal {v['refusal_gain']:+.2f}, task kept {kept}: {'helps' if v['helps'] else 'no clear help'}"


def figure_html(out: Path, stem: str) -> str:
    figures = notebook_figures(out / "notebooks" / f"{stem}.ipynb")
    if not figures:
        return ""
    return (f'<figure><img alt="{stem}: main figure" src="data:image/png;base64,{figures[-1]}"><figcaption>'
            f"Main figure: the notebook's last ({len(figures)} of {len(figures)}); the others are in the executed "
            "notebook.</figcaption></figure>")


def notebook_section(out: Path, run: dict) -> str:
    """One notebook: title, status and time, headline figures, main figure, link, raw record (collapsed)."""
    stem = run["notebook"]
    teaches = TITLES.get(stem, ("", "", ""))[2]
    parts = [f'<section id="{stem}"><h3>{html.escape(title_of(stem))}</h3>',
             (f'<p>{html.escape(teaches)}{". " if teaches else ""}{status_html(run)} in {minutes(run["seconds"])}; '
             f'<a href="notebooks/{stem}.html">the executed notebook</a></p>')]
    if run.get("error"):
        parts.append(f'<pre class="bad">{html.escape(run["error"])}</pre>')
    record = results_of(out, run)
    if record is None:
        parts.append('<p class="note">No results recorded in this run.</p>')
    elif stem == COMPARISON:
        parts.append('<p>Its headline is the <a href="#comparison">comparison</a> above, where its Pareto plot is redrawn.</p>')
    else:
        parts.append(headline_html(record) + figure_html(out, stem))
    if record is not None:
        raw = json.dumps(record, indent=1)
        parts.append(f"<details><summary>raw record: results/{stem}.json ({len(raw) / 1000:.1f} kB)</summary>"
                     f"<pre>{html.escape(raw)}</pre></details>")
    return "".join(parts) + "</section>"


def write_report(out: Path, summary: dict) -> Path:
    """OUT/report.html from OUT/course.json's summary and what each notebook left under OUT."""
    env = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                  for k, v in summary["environment"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>safelora-lite course report</title>
<style>{STYLE}</style></head><body>
<h1>safelora-lite course report</h1>{header_html(summary)}
<h2 id="comparison">Comparison (notebook 07)</h2>{comparison_html(out)}
<h2>Notebooks</h2>{''.join(notebook_section(out, run) for run in summary["runs"])}
<details><summary><b>Environment</b></summary><table>{env}</table></details></body></html>"""
    target = out / "report.html"
    target.write_text(page)
    return target
