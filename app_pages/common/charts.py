"""Plotly figures for the panel: usage over time, users × days heat map, request sizes, estimate accuracy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from .i18n import t

PALETTE = px.colors.qualitative.Safe
HEIGHT = 360


def _style(fig: go.Figure, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), hovermode="x unified",
                      separators=".,")
    return fig


def usage_over_time(frame: pd.DataFrame) -> go.Figure:
    """Tokens per day, stacked by model."""
    per_day = frame.groupby(["day", "model"], as_index=False)["tokens"].sum()
    per_day["day"] = pd.to_datetime(per_day["day"])
    order = per_day.groupby("model")["tokens"].sum().sort_values(ascending=False).index.tolist()
    kind = px.bar if per_day["day"].nunique() <= 62 else px.area
    fig = kind(per_day, x="day", y="tokens", color="model", category_orders={"model": order},
               color_discrete_sequence=PALETTE, labels={"day": "", "tokens": t("chart.tokens"), "model": ""})
    return _style(fig)


def top_bar(frame: pd.DataFrame, label: str, value: str = "tokens", limit: int = 10) -> go.Figure:
    """A horizontal bar chart of the largest consumers (users or models)."""
    top = frame.nlargest(limit, value).iloc[::-1]
    fig = px.bar(top, x=value, y=label, orientation="h", color_discrete_sequence=[PALETTE[0]], text_auto=".3s",
                 labels={value: t("chart.tokens"), label: ""})
    fig.update_layout(hovermode="closest")
    return _style(fig, height=max(220, 28 * len(top) + 60))


def utilization_heatmap(frame: pd.DataFrame, limits: dict[str, int], names: dict[str, str],
                        max_users: int = 40) -> go.Figure:
    """Users × days, coloured by the share of each user's limit spent that day (top users by tokens)."""
    per = frame.groupby(["user_id", "day"], as_index=False)["tokens"].sum()
    top = per.groupby("user_id")["tokens"].sum().nlargest(max_users).index
    per = per[per["user_id"].isin(top)].copy()
    limit = per["user_id"].map(lambda u: limits.get(u, -1))
    per["share"] = (100 * per["tokens"] / limit.where(limit > 0)).round(1)
    grid = per.pivot(index="user_id", columns="day", values="share").reindex(top[::-1])
    unique = display_names(grid.index, names)
    labels = [unique[u] for u in grid.index]
    fig = go.Figure(go.Heatmap(z=grid.values, x=pd.to_datetime(grid.columns), y=labels, zmin=0, zmax=100,
                               colorscale="YlOrRd", colorbar=dict(title="%", ticksuffix="%"), xgap=1, ygap=1,
                               hovertemplate="%{y}<br>%{x|%Y-%m-%d}: %{z}%<extra></extra>"))
    return _style(fig, height=max(300, 16 * len(labels) + 80)).update_layout(hovermode="closest")


def size_histogram(events: pd.DataFrame) -> go.Figure:
    """How large requests are: tokens per request on log-spaced bins, stacked by model."""
    counted = events[events["status"].isin(["settled", "pending"])]
    actual = counted["actual_prompt"].fillna(0).astype(float) + counted["actual_completion"].fillna(0).astype(float)
    sizes = actual.where(counted["status"] == "settled", counted["charged"].astype(float))
    sized = pd.DataFrame({"size": sizes.to_numpy(), "model": counted["model"].to_numpy()})
    sized = sized[sized["size"] > 0]
    fig = go.Figure()
    if sized.empty:
        return _style(fig)
    low, high = np.floor(np.log10(sized["size"].min())), np.ceil(np.log10(sized["size"].max()))
    edges = np.logspace(low, max(high, low + 1), 31)
    centers = np.sqrt(edges[:-1] * edges[1:])
    order = sized["model"].value_counts().index
    for i, model in enumerate(order):
        counts, _ = np.histogram(sized.loc[sized["model"] == model, "size"], bins=edges)
        fig.add_trace(go.Bar(x=centers, y=counts, width=np.diff(edges), name=model,
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate="~%{x:,.0f}: %{y}<extra>" + str(model) + "</extra>"))
    fig.update_layout(barmode="stack", bargap=0)
    fig.update_xaxes(type="log", title_text=t("chart.request_tokens"))
    fig.update_yaxes(title_text=t("chart.requests"))
    return _style(fig).update_layout(hovermode="closest")


def display_names(user_ids, names: dict[str, str]) -> dict[str, str]:
    """A readable, unique label per user id: the name, with a short id where two people share a name."""
    labels = {uid: names.get(uid) or uid for uid in user_ids}
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {uid: f"{label} ({uid[:6]})" if seen[label] > 1 and label != uid else label
            for uid, label in labels.items()}


def user_daily(frame: pd.DataFrame, limit: int) -> go.Figure:
    """One user's tokens per day, stacked by model, with their total limit as a line."""
    fig = usage_over_time(frame)
    if limit > 0:
        fig.add_hline(y=limit, line_dash="dash", line_color="#c0392b",
                      annotation_text=t("chart.limit", limit=f"{limit:,}"), annotation_position="top left")
    return fig


def estimate_scatter(events: pd.DataFrame) -> go.Figure:
    """Estimated versus actual prompt tokens per request, by model, with the y = x line."""
    fig = px.scatter(events, x="actual_prompt", y="est_prompt", color="model", opacity=0.6,
                     color_discrete_sequence=PALETTE,
                     labels={"actual_prompt": t("chart.actual"), "est_prompt": t("chart.estimated"), "model": ""})
    top = float(max(events["actual_prompt"].max(), events["est_prompt"].max()) or 1)
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="grey"),
                             name="y = x", hoverinfo="skip"))
    return _style(fig).update_layout(hovermode="closest")


def error_histogram(events: pd.DataFrame) -> go.Figure:
    """Distribution of the estimate's error in % of the actual, by model."""
    fig = px.histogram(events, x="error_pct", color="model", nbins=60, barmode="overlay", opacity=0.65,
                       color_discrete_sequence=PALETTE,
                       labels={"error_pct": t("chart.error_pct"), "model": ""})
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_yaxes(title_text=t("chart.requests"))
    return _style(fig).update_layout(hovermode="closest")
