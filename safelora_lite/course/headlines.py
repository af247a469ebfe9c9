"""A notebook's headline figures, found in its results record by shape (no per-notebook code).

The rule, so that a new notebook needs nothing:
  - rates: every dict, up to three keys deep, that holds all four rates (RATES) is a row of the rates
    table; a rate given as {"mean", "std"} (a summary over seeds) reads "mean ± std"; the dict's other
    short values (method, k, weight, ...) are the row's setting.
  - figures: the top level's numbers, yes/no values, short strings and short lists of those, one row
    each; a small dict (at most SMALL entries) up to two keys deep is one row of its short values.
    Bigger dicts (settings blocks) and lists of runs (sweeps, rows, curves) stay in the raw record.
  - statements: the top level's longer strings and lists of them (conclusions written by the run).
Everything keeps the order the notebook recorded it in.
"""

import html
import numbers

from safelora_lite.evaluation.generation import RATES
from safelora_lite.evaluation.intervals import interval_text

SMALL = 8  # a dict with more entries is a settings block or a table, not a headline
MAX_ROWS = 12  # per table; the rest stays in the raw record
MAX_TEXT = 60  # a longer string is a statement, not a figure


def is_scalar(value) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    return isinstance(value, (bool, numbers.Number))


def is_short(value) -> bool:
    """A scalar, or a short list of scalars (seeds, selected modules, a range)."""
    if isinstance(value, list):
        return 0 < len(value) <= SMALL and all(is_scalar(v) for v in value)
    return is_scalar(value)


def is_rates(value) -> bool:
    return isinstance(value, dict) and all(r in value for r in RATES)


def is_statement(value) -> bool:
    texts = value if isinstance(value, list) else [value]
    return bool(texts) and all(isinstance(t, str) for t in texts) and not is_short(value)


def find_headlines(record: dict) -> dict[str, list]:
    """{"rates": [(path, dict)], "figures": [(path, value or {key: value})], "statements": [str]}."""
    found: dict[str, list] = {"rates": [], "figures": [], "statements": []}

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*path, str(key))
            name = ".".join(here)
            if is_rates(value):
                found["rates"].append((name, value))
            elif isinstance(value, dict):
                short = {k: v for k, v in value.items() if is_short(v)}
                if short and len(value) <= SMALL and len(here) <= 2:
                    found["figures"].append((name, short))
                if len(here) < 3:
                    walk(value, here)
            elif not path and is_short(value):
                found["figures"].append((name, value))
            elif not path and is_statement(value):
                found["statements"].extend(value if isinstance(value, list) else [value])

    walk({k: v for k, v in record.items() if k != "notebook"}, ())
    return found


def fmt(value) -> str:
    """One value for a table: yes/no, integers with thousands separators, floats to 3 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return " &middot; ".join(f"{html.escape(str(k))} <b>{fmt(v)}</b>" for k, v in value.items())
    return html.escape(str(value))


def fmt_rate(value, prompts: int | None = None) -> str:
    """A rate: 0.92, 0.92 [0.89, 0.95] with the 95% Wilson interval of its `prompts`, or 0.92 ± 0.03 for a
    summary over seeds."""
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.2f} ± {value.get('std', 0.0):.2f}"
    if isinstance(value, numbers.Real) and prompts:
        return interval_text(value, prompts)
    return f"{value:.2f}" if isinstance(value, numbers.Real) else html.escape(str(value))


def setting(rates: dict) -> str:
    """A rates dict's other short values (method, k, weight, ...) as `name=value` pairs."""
    return ", ".join(f"{html.escape(str(k))}={fmt(v)}" for k, v in rates.items() if k not in RATES and is_scalar(v))


def more_note(total: int) -> str:
    return f'<p class="note">{total - MAX_ROWS} more in the raw record below.</p>' if total > MAX_ROWS else ""


def rates_table(rows: list[tuple[str, dict]]) -> str:
    """Rates, one row per dict found; a setting column only when some row has one."""
    shown = rows[:MAX_ROWS]
    settings = [setting(rates) for _, rates in shown]
    extra = any(settings)
    head = "".join(f'<th class="num">{r.replace("_", " ")}</th>' for r in RATES) + ("<th>setting</th>" if extra else "")
    body = "".join(f"<tr><td>{html.escape(path)}</td>" + "".join(f'<td class="num">{fmt_rate(rates[r], (rates.get("n") or {}).get(r))}</td>' for r in RATES)
                   + (f"<td>{text}</td>" if extra else "") + "</tr>" for (path, rates), text in zip(shown, settings))
    note = '<p class="note">[low, high]: the 95% Wilson interval over the prompts.</p>' if any("n" in rates for _, rates in shown) else ""
    return f'<table class="rates"><tr><th>rates of</th>{head}</tr>{body}</table>{note}{more_note(len(rows))}'


def figures_table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(path)}</th><td>{fmt(value)}</td></tr>" for path, value in rows[:MAX_ROWS])
    return f'<table class="figures">{body}</table>{more_note(len(rows))}'


def headline_html(record: dict) -> str:
    """The headline of one record: its statements, its rates table, its other figures."""
    found = find_headlines(record)
    parts = []
    if found["statements"]:
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in found["statements"]) + "</ul>")
    if found["rates"]:
        parts.append(rates_table(found["rates"]))
    if found["figures"]:
        parts.append(figures_table(found["figures"]))
    return "".join(parts) or '<p class="note">No headline figures in this record (see the raw record).</p>'
