"""The course report: OUT/report.html from the executed notebooks and what each recorded."""

import html
import json
from pathlib import Path

from safelora_lite.evaluation.generation import RATES


def notebook_figures(executed: Path, limit: int = 4) -> list[str]:
    """The first PNG outputs of an executed notebook, base64-encoded (for embedding in the report)."""
    import nbformat

    if not executed.exists():
        return []
    images = []
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                images.append(png.replace("\n", ""))
    return images[:limit]


def comparison_html(out: Path) -> str:
    """The comparison table (mean ± std over seeds, every attack) and notebook 07's figures."""
    path = out / "results" / "07_comparison.json"
    if not path.exists():
        return "<p>Notebook 07 (comparison) has not run in this course run.</p>"
    record = json.loads(path.read_text())
    rates = RATES
    parts = [f"<p>protocol <code>{html.escape(record['protocol'])}</code>, overrides "
             f"<code>{html.escape(json.dumps(record['overrides']))}</code></p>"]
    for attack, methods in record["summary"].items():
        head = "".join(f"<th>{r.replace('_', ' ')}</th>" for r in rates)
        body = "".join(
            f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{s[r]['mean']:.2f} ± {s[r]['std']:.2f}</td>" for r in rates)
            + f"<td>{s['seconds']:.1f}</td></tr>" for m, s in methods.items())
        parts.append(f"<h3>attack: {html.escape(attack)}</h3><table><tr><th>method</th>{head}<th>extra s</th></tr>{body}</table>")
    for png in notebook_figures(out / "notebooks" / "07_comparison.ipynb"):
        parts.append(f'<img alt="comparison figure" style="max-width:100%" src="data:image/png;base64,{png}">')
    return "".join(parts)


def write_report(out: Path, summary: dict) -> Path:
    """OUT/report.html: the comparison, per-notebook status and time, headline records, the environment."""
    rows = []
    for run in summary["runs"]:
        link = f'<a href="notebooks/{run["notebook"]}.html">{html.escape(run["notebook"])}</a>'
        params = html.escape(json.dumps(run.get("parameters", {})))
        steal = f"{run['cpu_steal']:.0%}" if run.get("cpu_steal") is not None else ""
        rows.append(f"<tr><td>{link}</td><td>{run['status']}</td><td>{run['seconds']}</td><td>{steal}</td>"
                    f"<td><code>{params}</code></td><td>{html.escape(run['error'] or '')}</td></tr>")
    sections = []
    for run in summary["runs"]:
        if run["results"]:
            data = json.loads(Path(run["results"]).read_text())
            sections.append(f"<h3>{html.escape(run['notebook'])}</h3><pre>{html.escape(json.dumps(data, indent=1)[:4000])}</pre>")
    profile = summary.get("profile")
    profile_line = (f"profile <code>{html.escape(profile)}</code> (configs/course/{html.escape(profile)}.json: "
                    "parameters that differ from the notebooks' defaults, with their reasons)" if profile
                    else "every notebook with its own defaults (no profile)")
    if "wall_seconds" in summary:
        profile_line += f"; {summary['wall_seconds']} s in all, {summary['jobs']} notebook(s) at once after the setup"
    env = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in summary["environment"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>safelora-lite course report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}td,th{{padding:2px 8px;text-align:left}}pre{{background:#f4f4f4;padding:8px;overflow:auto}}</style></head><body>
<h1>safelora-lite course report</h1>
<h2>Comparison (notebook 07)</h2>{comparison_html(out)}
<h2>Notebooks</h2><p>{profile_line}</p>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>CPU steal</th><th>parameters set</th><th>error</th></tr>{''.join(rows)}</table>
<h2>Recorded results</h2>{''.join(sections)}
<h2>Environment</h2><table>{env}</table></body></html>"""
    target = out / "report.html"
    target.write_text(page)
    return target
