"""Figures of the exchangeable wing: causal graphs."""

from __future__ import annotations

import networkx as nx

from causalid._plotting import pyplot


def plot_graph(graph: nx.DiGraph, truth: nx.DiGraph | None = None, ax=None, title=None):
    """Draw a DAG on a circle.  With ``truth``: green = correct, orange = reversed,
    red = extra, dashed grey = missing; a legend gives the counts."""
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 6.5))
    else:
        fig = ax.figure
    nodes = list(truth.nodes) if truth is not None else list(graph.nodes)
    nodes += [n for n in graph.nodes if n not in nodes]
    pos = nx.circular_layout(nodes)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, ax=ax, node_color="#dde7f5",
                           edgecolors="#33476b", node_size=1400)
    nx.draw_networkx_labels(graph, pos, labels={n: str(n) for n in nodes}, ax=ax, font_size=9)
    groups: dict[str, list] = {"correct": [], "reversed": [], "extra": [], "missing": [], "edge": []}
    for u, v in graph.edges:
        if truth is None:
            groups["edge"].append((u, v))
        elif truth.has_edge(u, v):
            groups["correct"].append((u, v))
        elif truth.has_edge(v, u):
            groups["reversed"].append((u, v))
        else:
            groups["extra"].append((u, v))
    if truth is not None:
        groups["missing"] = [(u, v) for u, v in truth.edges
                             if not graph.has_edge(u, v) and not graph.has_edge(v, u)]
    style = {"edge": ("#33476b", "solid"), "correct": ("#2a9d3a", "solid"),
             "reversed": ("#e08a00", "solid"), "extra": ("#c62828", "solid"),
             "missing": ("#9e9e9e", "dashed")}
    from matplotlib.lines import Line2D

    handles = []
    for name, edgelist in groups.items():
        if not edgelist:
            continue
        color, ls = style[name]
        nx.draw_networkx_edges(graph if name != "missing" else truth, pos, edgelist=edgelist, ax=ax,
                               edge_color=color, style=ls, arrows=True, arrowsize=18,
                               node_size=1400, width=2)
        handles.append(Line2D([], [], color=color, linestyle=ls, label=f"{name} ({len(edgelist)})"))
    if truth is not None and handles:
        ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False)
    ax.set_title(title or "")
    ax.set_axis_off()
    return fig
