"""What every minicluster dashboard shares, on top of grafana-foundation-sdk's builders.

- one datasource variable, `$datasource`, preset to the provisioned Prometheus' uid; every
  panel and query variable points at `${datasource}`, never at a datasource name;
- query variables are multi-select with an "All" of `.*`, so `=~"$var"` always matches;
- panel ids are numbered in order when the dashboard is turned into JSON, so they are
  unique and stable (a drift test compares the JSON with the committed copy).
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from minicluster.render.grafana import DATASOURCE_UID

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["minicluster"]
REFRESH = "30s"


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID))
    )


def query_variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    """A multi-select variable over label values; "All" is `.*`."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": query, "refId": f"{name}-values", "qryType": 1})
        .definition(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def target(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False):
    query = prometheus.Dataquery().expr(expr.strip()).ref_id(ref).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(PromQueryFormat.TABLE)
    return query


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def timeseries_panel(
    title: str,
    targets: list,
    *,
    unit: str,
    description: str,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    threshold: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        ).fill_opacity(60)
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if threshold is not None:
        # The alert's threshold drawn as a dashed line.
        panel = panel.thresholds(thresholds((None, "green"), (threshold, "red"))).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    return panel


def stat_panel(
    title: str,
    targets: list,
    *,
    unit: str,
    description: str,
    width: int = 6,
    height: int = 4,
    steps: tuple[tuple[float | None, str], ...] = ((None, "blue"),),
    mappings: dict[str, str] | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
    )
    if mappings:
        panel = panel.mappings(
            [
                ValueMap(
                    options={
                        value: ValueMappingResult(text=text, index=index)
                        for index, (value, text) in enumerate(mappings.items())
                    }
                )
            ]
        )
    return panel


def table_panel(
    title: str,
    targets: list,
    *,
    description: str,
    unit: str = "none",
    width: int = 12,
    height: int = 8,
    hide_columns: tuple[str, ...] = ("Time", "__name__", "instance", "job"),
    rename: dict[str, str] | None = None,
) -> table.Panel:
    """A table of instant queries, merged on their labels (one row per series)."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .span(width)
        .height(height)
        .transformations(
            [
                DataTransformerConfig(id_val="merge", options={}),
                DataTransformerConfig(
                    id_val="organize",
                    options={
                        "excludeByName": {column: True for column in hide_columns},
                        "renameByName": rename or {},
                    },
                ),
            ]
        )
    )


def row(title: str) -> dashboard_builders.Row:
    return dashboard_builders.Row(title)


def new_dashboard(uid: str, title: str, description: str) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .readonly()
        .time("now-1h", "now")
        .refresh(REFRESH)
        .timezone("browser")
        .with_variable(datasource_variable())
    )


def runbook_link(base_url: str) -> dashboard_builders.DashboardLink:
    """A link in the dashboard's header to the runbooks, the same page alerts link to."""
    return (
        dashboard_builders.DashboardLink("Runbooks")
        .type(DashboardLinkType.LINK)
        .url(base_url)
        .icon("doc")
        .tooltip("What each alert means and what to do")
        .target_blank(True)
    )


def to_json(dashboard: dashboard_builders.Dashboard) -> dict:
    """The dashboard as plain JSON data, its panels numbered 1, 2, ... in layout order."""
    data = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    return data
