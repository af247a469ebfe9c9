"""The report's figures: a notebook's main figure, and the comparison's Pareto plot redrawn legibly.

Main figure rule: the LAST image an executed notebook shows. The course's notebooks build up to their
result, so the last figure is the one beside their conclusions (the others are in the notebook's HTML).

The Pareto plot is drawn here from notebook 07's record rather than copied from the notebook, whose
method names written beside the points pile up where methods land close together. Here every method
gets a number (the key is the comparison table) and a colour; points closer than CLUSTER share one
label ("1,2,4"); each label takes the first free spot around its point, with a leader line when moved.
"""

import base64
import io
from pathlib import Path

KEY_WIDTH = 1.9  # inches on the right for the key
CLUSTER = 0.025  # points this close on both axes (rates) share one label
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}  # readable over lines
LABEL_SPOTS = [(r * dx, r * dy) for r in (11, 22, 34, 46) for dx, dy in
               ((0, 1), (1, 1), (-1, 1), (1, 0), (-1, 0), (0, -1), (1, -1), (-1, -1))]  # offsets in points


def notebook_figures(executed: Path) -> list[str]:
    """Every PNG output of an executed notebook, in order, base64-encoded (for embedding)."""
    import nbformat

    if not executed.exists():
        return []
    return [output["data"]["image/png"].replace("\n", "")
            for cell in nbformat.read(executed, as_version=4).cells
            for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]


def clusters(points: dict[str, tuple[float, float]]) -> list[list[str]]:
    """Methods grouped so that each group's points are chained within CLUSTER of each other, by x."""
    groups: list[list[str]] = []
    for name in sorted(points, key=lambda n: points[n]):
        near = [g for g in groups if any(abs(points[n][0] - points[name][0]) <= CLUSTER
                                         and abs(points[n][1] - points[name][1]) <= CLUSTER for n in g)]
        merged = [name] + [n for g in near for n in g]
        groups = [g for g in groups if g not in near] + [merged]
    return sorted(groups, key=lambda g: min(points[n] for n in g))


def place_label(ax, renderer, text: str, xy: tuple[float, float], taken: list) -> None:
    """Annotate `xy` with `text` at the first spot that stays inside the axes and off every earlier box."""
    from matplotlib.text import Text

    inside = ax.get_window_extent(renderer)
    for dx, dy in LABEL_SPOTS:
        moved = abs(dx) + abs(dy) > 12
        label = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", ha="center", va="center",
                            fontsize=10, fontweight="bold", bbox=LABEL_BOX,
                            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6} if moved else None)
        label.update_positions(renderer)
        box = Text.get_window_extent(label, renderer).padded(2)  # the text alone, not its leader line
        fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        if fits and not any(box.overlaps(b) for b in taken):
            taken.append(box)
            return
        label.remove()
    ax.annotate(text, xy, xytext=(0, 11), textcoords="offset points", ha="center", fontsize=10, fontweight="bold",
                bbox=LABEL_BOX)


def pareto_png(summary: dict, fronts: dict, numbers: dict[str, int]) -> str:
    """One panel per attack, task accuracy against refusal rate (mean ± std over seeds), base64 PNG.

    summary: {attack: {method: {rate: {"mean", "std"}}}}; fronts: {attack: [method on the front]};
    numbers: {method: its number in the key}.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    attacks = list(summary)
    fig = Figure(figsize=(5.0 * len(attacks) + KEY_WIDTH, 4.6), dpi=130)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    palette = colormaps["tab10" if len(numbers) <= 10 else "tab20"]
    colour = {m: palette(i % palette.N) for i, m in enumerate(numbers)}
    drawn = []
    for ax, attack in zip(axes, attacks):
        stats = summary[attack]
        points = {m: (s["task_accuracy"]["mean"], s["refusal_rate"]["mean"]) for m, s in stats.items()}
        ax.set(xlim=(-0.05, 1.05), ylim=(-0.07, 1.07), xlabel="task accuracy (higher: better)",
               ylabel="refusal rate on harmful prompts (higher: safer)", title=f"attack: {attack}")
        ax.grid(alpha=0.3)
        for m, (x, y) in points.items():
            ax.errorbar(x, y, xerr=stats[m]["task_accuracy"]["std"], yerr=stats[m]["refusal_rate"]["std"], fmt="o",
                        ms=7, capsize=3, color=colour[m], zorder=3)
            if m in fronts.get(attack, []):
                ax.scatter([x], [y], s=260, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
        drawn.append((ax, points))
    fig.tight_layout(rect=(0, 0, 1 - KEY_WIDTH / fig.get_figwidth(), 1))  # room on the right for the key
    renderer = canvas.get_renderer()
    for ax, points in drawn:  # labels last: their free spots depend on the final layout
        taken = [ax.transData.transform_bbox(_point_box(p)) for p in points.values()]
        for group in clusters(points):
            xy = (sum(points[m][0] for m in group) / len(group), sum(points[m][1] for m in group) / len(group))
            place_label(ax, renderer, ",".join(str(numbers[m]) for m in sorted(group, key=numbers.get)), xy, taken)
    handles = [Line2D([], [], marker="o", ls="", color=colour[m], label=f"{numbers[m]}  {m}") for m in numbers]
    handles.append(Line2D([], [], marker="o", ls="", ms=14, mfc="none", mec="black", label="Pareto front"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - KEY_WIDTH / fig.get_figwidth(), 0.5), fontsize=9,
               frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _point_box(point: tuple[float, float]):
    """A marker's footprint in data units (about 0.012 either side), so labels do not cover points."""
    from matplotlib.transforms import Bbox

    x, y = point
    return Bbox([[x - 0.012, y - 0.012], [x + 0.012, y + 0.012]])
