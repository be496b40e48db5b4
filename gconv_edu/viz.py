"""The drawing helpers the lessons share, and ONE palette: group ``g`` has the same colour in every figure.

The palette is Okabe and Ito's (2008), safe for the common forms of colour blindness; with more than eight groups
the colours repeat (neighbouring groups still differ). Figures go to ``$GCONV_FIGURES_DIR``, or ``figures/`` at the
repository root of a checkout when it is unset (``./figures`` for an installed copy); ``$GCONV_LESSONS_FAST``
asks lessons for smaller sizes (the tests set it). In a Jupyter kernel :func:`save` also shows each figure inline.

Everything here only draws: the numbers come from :mod:`gconv_edu.groups` and :class:`gconv_edu.ConvGeometry`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# No matplotlib.use() here: without a display matplotlib falls back to Agg by itself, `gconv-edu lessons` sets
# MPLBACKEND=Agg, and a notebook keeps its inline backend.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle

from .course import default_figures_dir
from .groups import group_of_channel

# Okabe-Ito, reordered so that the first colours are the most distinct on white (yellow is last but one).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
NEUTRAL = "#9A9A9A"  # things that belong to no group (shuffles, dense layers, reference lines)
# Backends and libraries are a different quantity from groups, so they get a different palette: Paul Tol's "muted"
# dark tones (colour-blind safe), none of which is an Okabe-Ito group colour. Figures also give each its own marker.
BACKEND_PALETTE: tuple[str, ...] = ("#332288", "#882255", "#117733", "#999933", "#AA4499", "#44AA99", "#661100")
# Window positions (which pixels one output reads; lessons 1 and 4): a fourth quantity, Tol's muted sand and cyan,
# neither a group nor a backend colour, drawn as light tints.
WINDOW_PALETTE: tuple[str, ...] = ("#DDCC77", "#88CCEE")
# Classes of the lesson 10 data set: a third quantity, drawn with Tol's "bright" blue/red-purple/yellow/grey, which
# stay distinct under deuteranopia and protanopia (no red-green pair).
CLASS_PALETTE: tuple[str, ...] = ("#4477AA", "#AA3377", "#CCBB44", "#BBBBBB", "#66CCEE", "#228833")


# --------------------------------------------------------------------------- where figures go
def figures_dir() -> Path:
    """``$GCONV_FIGURES_DIR``, else ``figures/`` at the repository root of a checkout (``pip install -e .``), else
    ``figures/`` in the current directory (an installed copy must not write into site-packages). Created if missing."""
    folder = default_figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fast_mode() -> bool:
    """True when ``$GCONV_LESSONS_FAST`` is set to anything but "", "0": lessons then use smaller sizes."""
    return os.environ.get("GCONV_LESSONS_FAST", "") not in ("", "0")


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, VS Code, nbclient): IPython is running and has a kernel."""
    ipython = sys.modules.get("IPython")  # never imported here: a plain script has no IPython to ask
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def save(fig: Any, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` as ``figures_dir()/name`` (a .png), show it inline in a notebook, close it; return the path.

    In a Jupyter kernel the figure is displayed before it is closed, so every saved figure also shows in the notebook
    (closing it first would leave the cell without an image); in a script it is only written.
    """
    if not name.endswith(".png"):
        raise ValueError(f"name={name!r} must end with '.png'")
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if in_notebook_kernel():
        from IPython.display import display

        display(fig)
    plt.close(fig)
    print(f"[figure] {path}")
    return path


# --------------------------------------------------------------------------- colours
def backend_color(index: int) -> str:
    """The colour of the ``index``-th backend or library in a figure (never a group colour)."""
    return BACKEND_PALETTE[index % len(BACKEND_PALETTE)]


def group_color(group: int) -> str:
    """The colour of group ``group`` (0-based) in every figure of the course."""
    return PALETTE[group % len(PALETTE)]


def channel_colors(channels: int, groups: int) -> list[str]:
    """(channels,) colours: each channel takes the colour of the group that owns it."""
    return [group_color(int(g)) for g in group_of_channel(channels, groups)]


def group_legend(ax: Any, groups: int, loc: str = "upper right", max_entries: int = 8, **kwargs: Any) -> None:
    """A legend with one patch per group (at most ``max_entries``; more would only repeat colours)."""
    shown = min(groups, max_entries)
    handles = [Patch(color=group_color(g), label=f"group {g}") for g in range(shown)]
    ax.legend(handles=handles, loc=loc, fontsize=8, **kwargs)


# --------------------------------------------------------------------------- diagrams
def draw_channel_column(ax: Any, x: float, colors: Sequence[str], label: str | None = None, size: float = 60) -> None:
    """One column of channel dots at abscissa ``x``, channel 0 at the top, with an optional label above."""
    count = len(colors)
    ys = _channel_y(count)
    ax.scatter(np.full(count, x), ys, s=size, c=list(colors), edgecolors="black", linewidths=0.6, zorder=3)
    if label:
        ax.text(x, 1.07, label, ha="center", va="bottom", fontsize=9)


def _channel_y(count: int) -> np.ndarray:
    """Vertical positions of ``count`` channels in [0, 1], channel 0 at the top."""
    return np.linspace(1.0, 0.0, count) if count > 1 else np.array([0.5])


def draw_links(ax: Any, x0: float, x1: float, adjacency: np.ndarray, colors: Sequence[str], alpha: float = 0.7) -> None:
    """Lines from channel ``i`` at ``x0`` to channel ``j`` at ``x1`` wherever ``adjacency[j, i]`` is true.

    adjacency: (channels at x1, channels at x0), boolean; ``colors[j]`` colours the lines into channel ``j``.
    """
    y0, y1 = _channel_y(adjacency.shape[1]), _channel_y(adjacency.shape[0])
    for j, i in zip(*np.nonzero(adjacency)):
        ax.plot([x0, x1], [y0[i], y1[j]], color=colors[j], alpha=alpha, linewidth=1.0, zorder=1)


def connection_matrix(in_channels: int, out_channels: int, groups: int) -> np.ndarray:
    """(C_out, C_in) boolean: output channel j reads input channel i. Block-diagonal with ``groups`` blocks."""
    return group_of_channel(out_channels, groups)[:, None] == group_of_channel(in_channels, groups)[None, :]


def draw_connections(ax: Any, in_channels: int, out_channels: int, groups: int, title: str | None = None) -> None:
    """The channel-to-filter diagram of one grouped layer: inputs (left), filters = outputs (right), coloured by group.

    A filter is connected to exactly the ``in_channels // groups`` inputs of its own group; nothing crosses groups.
    """
    links = connection_matrix(in_channels, out_channels, groups)
    draw_channel_column(ax, 0.0, channel_colors(in_channels, groups), "input\nchannels")
    draw_channel_column(ax, 1.0, channel_colors(out_channels, groups), "filters =\noutput channels")
    draw_links(ax, 0.0, 1.0, links, channel_colors(out_channels, groups))
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(-0.08, 1.25)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)


def draw_block_matrix(
    ax: Any,
    matrix: np.ndarray,
    groups: int,
    title: str | None = None,
    cmap: Any = "Greys",
    mask_zeros: bool = False,
    **imshow_kwargs: Any,
) -> Any:
    """A (rows, columns) matrix as an image, each diagonal group block outlined in its group's colour.

    rows = C_out (or filters), columns = C_in (or filters): both divide into ``groups`` equal blocks.
    ``mask_zeros`` draws exact zeros white and everything else in visible greys (for weight-structure pictures).
    Returns the image (for a colour bar).
    """
    rows, columns = matrix.shape
    if mask_zeros:
        # Structural zeros stay white; the darkest grey is the largest entry, the lightest stays visibly grey.
        largest = float(np.max(np.abs(matrix))) or 1.0
        imshow_kwargs = {"vmin": -0.35 * largest, "vmax": largest, **imshow_kwargs}
        matrix = np.ma.masked_where(matrix == 0, matrix)
        colormap = plt.get_cmap(cmap).copy()
        colormap.set_bad("white")
        cmap = colormap
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest", **imshow_kwargs)
    for g in range(groups):
        height, width = rows / groups, columns / groups
        outline = Rectangle(
            (g * width - 0.5, g * height - 0.5), width, height, fill=False, edgecolor=group_color(g), linewidth=2.5
        )
        ax.add_patch(outline)
    ax.set_xlabel("input channel")
    ax.set_ylabel("output channel (filter)")
    if title:
        ax.set_title(title, fontsize=10)
    return image


def draw_grid(
    ax: Any,
    values: np.ndarray,
    origin: tuple[float, float] = (0.0, 0.0),
    highlights: Sequence[tuple[np.ndarray, str]] = (),
    fmt: str = "{:.0f}",
    label: str | None = None,
) -> None:
    """A small 2-D array drawn cell by cell with its values; each (mask, colour) in ``highlights`` tints its cells.

    values: (rows, columns); masks: (rows, columns) boolean; origin: bottom-left corner in data coordinates;
    row 0 is drawn at the top (as an image is read). Overlapping tints mix, so shared cells show as such.
    """
    rows, columns = values.shape
    x0, y0 = origin
    for r in range(rows):
        for c in range(columns):
            corner = (x0 + c, y0 + rows - 1 - r)
            ax.add_patch(Rectangle(corner, 1, 1, facecolor="white", edgecolor="black", linewidth=0.6))
            for mask, color in highlights:
                if mask[r, c]:
                    ax.add_patch(Rectangle(corner, 1, 1, facecolor=color, alpha=0.45, edgecolor="none"))
            text = fmt.format(values[r, c])
            ax.text(x0 + c + 0.5, y0 + rows - 0.5 - r, text, ha="center", va="center", fontsize=7)
    if label:
        ax.text(x0 + columns / 2, y0 + rows + 0.3, label, ha="center", va="bottom", fontsize=9)


def bar_labels(ax: Any, bars: Any, fmt: str = "{:.3g}") -> None:
    """Write each bar's height above it."""
    for bar in bars:
        height = bar.get_height()
        ax.annotate(
            fmt.format(height),
            (bar.get_x() + bar.get_width() / 2, height),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )


def draw_reach_markers(ax: Any, x: float, reach: np.ndarray, step: float = 0.09) -> None:
    """Beside a channel column at ``x``: for each channel, one small square per input group whose data reaches it.

    reach: (channels, groups) boolean. A channel fed by every group shows every group's colour.
    """
    ys = _channel_y(reach.shape[0])
    for channel, y in enumerate(ys):
        for group in np.nonzero(reach[channel])[0]:
            ax.scatter(x + step * (group + 1.5), y, marker="s", s=22, color=group_color(int(group)), zorder=3)


def draw_slab_stack(
    ax: Any,
    origin: tuple[float, float],
    colors: Sequence[str | None],
    size: float = 1.0,
    step: tuple[float, float] = (0.22, 0.16),
) -> None:
    """A 3-D block drawn as depth slabs in oblique projection: slab ``c`` is channel ``c``, channel 0 in front.

    colors: (channels,) one colour per slab, or None for a slab that is not there (drawn as a dashed outline: a
    channel the block does not span). origin: bottom-left corner of the front slab; each slab behind it is shifted
    by ``step`` (right, up). Slabs are drawn back to front, so nearer ones cover farther ones.
    """
    x0, y0 = origin
    for channel in reversed(range(len(colors))):
        corner = (x0 + channel * step[0], y0 + channel * step[1])
        color = colors[channel]
        if color is None:
            ax.add_patch(
                Rectangle(corner, size, size, fill=False, edgecolor=NEUTRAL, linestyle="--", linewidth=0.7, zorder=2)
            )
        else:
            ax.add_patch(Rectangle(corner, size, size, facecolor=color, edgecolor="black", linewidth=0.6, zorder=2))
