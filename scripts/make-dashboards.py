#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (run after changing them here).

Three dashboards, templated by agent, site and group (and target for the
detail): NOC overview, target detail, agent self-health. They link to each
other (overview -> target -> agent and back) carrying the variables and the
time range. Every stat and state panel has thresholds and value mappings;
every heat map is fed histogram buckets. tests/unit/dashboards_test.cpp
checks these properties and that the JSON matches this script; every panel's
query is checked against a real Prometheus by tests/e2e.

Usage: make-dashboards.py [--out DIR]   (default: the repository's dashboards/)"""
import json, os, sys

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'agent=~"$agent",site=~"$site",group=~"$group"'
UIDS = {"overview": "nightshift-noc", "target": "nightshift-target", "agent": "nightshift-agent"}
# Grafana expands ${var:queryparam} to var-NAME=value (every value of a multi-value variable).
CARRY = "${agent:queryparam}&${site:queryparam}&${group:queryparam}&${__url_time_range}"

# Colours people read at a glance: green is good, red needs someone.
GREEN, YELLOW, ORANGE, RED, BLUE, GREY = "green", "yellow", "orange", "red", "blue", "text"


def steps(*pairs):
    """Threshold steps: (None, colour) first, then (value, colour) ascending."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in pairs]}


def value_map(mapping):
    """Value mappings: {value: (text, colour)}."""
    return [{"type": "value", "options": {str(k): {"text": t, "color": c, "index": i}
                                           for i, (k, (t, c)) in enumerate(mapping.items())}}]


def range_map(lo, hi, text, colour):
    return {"type": "range", "options": {"from": lo, "to": hi, "result": {"text": text, "color": colour}}}


NO_DATA = {"type": "special", "options": {"match": "null", "result": {"text": "no data", "color": GREY}}}
UP_DOWN = value_map({0: ("down", RED), 1: ("up", GREEN)}) + [NO_DATA]
# IF-MIB ifOperStatus (RFC 2863).
IF_STATUS = value_map({1: ("up", GREEN), 2: ("down", RED), 3: ("testing", BLUE), 4: ("unknown", GREY),
                       5: ("dormant", BLUE), 6: ("notPresent", GREY), 7: ("lowerLayerDown", ORANGE)}) + [NO_DATA]
ZERO_OK = value_map({0: ("none", GREEN)}) + [NO_DATA]


def var(name, query, include_all=True, multi=True):
    return {"name": name, "label": name, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "includeAll": include_all, "multi": multi, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"} if include_all else {}}


def datasource_var():
    return {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}


def target_link(ref="${__field.labels.target}"):
    """A data link to the detail of the target a row or series names: `ref` is
    ${__field.labels.target} for series, ${__data.fields.target} for table rows."""
    return {"title": "Target detail: " + ref, "url": f"/d/{UIDS['target']}/?{CARRY}&var-target={ref}"}


def panel(pid, title, kind, exprs, x, y, w=12, h=8, unit=None, legend=None, thresholds=None, mappings=None,
          links=None, extra=None):
    defaults = {}
    if unit:
        defaults["unit"] = unit
    if thresholds:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
    if mappings is not None:
        defaults["mappings"] = mappings
    if links:
        defaults["links"] = links
    p = {"id": pid, "title": title, "type": kind, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": (legend[i] if legend else "")}
                     for i, e in enumerate(exprs)],
         "fieldConfig": {"defaults": defaults, "overrides": []}, "options": {}}
    if kind == "stat":
        p["options"] = {"colorMode": "background", "graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}}
    if kind == "heatmap":
        # Buckets already counted by the agent: Grafana must not bucket them again.
        for t in p["targets"]:
            t["format"] = "heatmap"
        p["options"] = {"calculate": False, "yAxis": {"unit": unit or "short"}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64}}
    if extra:
        p.update(extra)
    return p


def instant_table(expr):
    return {"targets": [{"refId": "A", "instant": True, "format": "table", "expr": expr}]}


def dashboard(uid, title, variables, panels, tags, links):
    return {"uid": uid, "title": title, "tags": ["nightshift"] + tags, "timezone": "utc", "schemaVersion": 38,
            "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": [datasource_var()] + variables}, "panels": panels, "editable": True,
            "links": links}


def dash_link(title, to):
    # includeVars carries every variable of this dashboard; keepTime the range.
    return {"title": title, "type": "link", "url": f"/d/{UIDS[to]}/", "includeVars": True, "keepTime": True,
            "targetBlank": False, "icon": "dashboard", "tooltip": title}


common_vars = [var("agent", "label_values(probe_success, agent)"),
               var("site", 'label_values(probe_success{agent=~"$agent"}, site)'),
               var("group", 'label_values(probe_success{agent=~"$agent",site=~"$site"}, group)')]

TABLE_ROW = "${__data.fields.target}"
RTT_P95 = f"topk(10, histogram_quantile(0.95, sum by (target, le) (rate(probe_icmp_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))))"
FAILING = f"topk(10, sum by (target, probe, reason) (nightshift_probe_failure_reason{{{SEL}}}))"
overview = dashboard(UIDS["overview"], "nightshift: NOC overview", common_vars, [
    panel(1, "Open incidents", "stat", [f'sum(nightshift_incidents_open{{agent=~"$agent"}})'], 0, 0, 4, 4,
          thresholds=steps((None, GREEN), (1, RED)), mappings=ZERO_OK),
    panel(2, "Targets down", "stat", [f"count(min by (agent, target) (probe_success{{{SEL}}}) == 0) or vector(0)"], 4, 0, 4, 4,
          thresholds=steps((None, GREEN), (1, RED)), mappings=ZERO_OK),
    panel(3, "Targets up", "stat", [f"count(min by (agent, target) (probe_success{{{SEL}}}) == 1) or vector(0)"], 8, 0, 4, 4,
          thresholds=steps((None, RED), (1, GREEN)), mappings=value_map({0: ("none up", RED)}) + [NO_DATA]),
    panel(4, "Firing alerts", "stat", [f'count(nightshift_alerts{{state="firing",agent=~"$agent"}}) or vector(0)'], 12, 0, 4, 4,
          thresholds=steps((None, GREEN), (1, ORANGE), (10, RED)), mappings=ZERO_OK),
    panel(5, "Pages undelivered", "stat", [f'sum(nightshift_outbox_depth{{agent=~"$agent"}})'], 16, 0, 4, 4,
          thresholds=steps((None, GREEN), (1, YELLOW), (10, RED)), mappings=ZERO_OK),
    panel(6, "Agents reporting", "stat", ['count(up{job=~".*"} == 1 and on(instance) nightshift_build_info)'], 20, 0, 4, 4,
          thresholds=steps((None, RED), (1, GREEN)), mappings=value_map({0: ("none", RED)}) + [NO_DATA],
          links=[{"title": "Agent self-health", "url": f"/d/{UIDS['agent']}/?${{agent:queryparam}}&${{__url_time_range}}"}]),
    panel(7, "Health by site and group (share of targets up)", "bargauge",
          [f"avg by (site, group) (min by (agent, site, group, target) (probe_success{{{SEL}}}))"], 0, 4, 12, 8,
          unit="percentunit", legend=["{{site}} / {{group}}"],
          thresholds=steps((None, RED), (0.9, ORANGE), (0.99, GREEN)),
          mappings=[range_map(1, 1, "all up", GREEN), NO_DATA]),
    panel(8, "Open incidents by severity", "timeseries", [f'sum by (severity) (nightshift_incidents_open{{agent=~"$agent"}})'],
          12, 4, 12, 8, legend=["{{severity}}"]),
    panel(9, "Loss by target", "status-history", [f"max by (target) (probe_icmp_loss_ratio{{{SEL}}})"], 0, 12, 12, 9,
          unit="percentunit", legend=["{{target}}"], thresholds=steps((None, GREEN), (0.01, YELLOW), (0.2, ORANGE), (0.5, RED)),
          mappings=[range_map(0, 0, "no loss", GREEN), range_map(1, 1, "all lost", RED), NO_DATA], links=[target_link()]),
    panel(10, "Round-trip time distribution (heat map)", "heatmap",
          [f"sum by (le) (increase(probe_icmp_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))"], 12, 12, 12, 9, unit="s",
          legend=["{{le}}"]),
    panel(11, "Worst targets: RTT p95", "table", [RTT_P95], 0, 21, 12, 9, unit="s", links=[target_link(TABLE_ROW)],
          extra=instant_table(RTT_P95)),
    panel(12, "Worst targets: failing probes", "table", [FAILING], 12, 21, 12, 9, links=[target_link(TABLE_ROW)],
          extra=instant_table(FAILING)),
], ["noc"], [dash_link("Target detail", "target"), dash_link("Agent self-health", "agent")])

detail_vars = common_vars + [var("target", f"label_values(probe_success{{{SEL}}}, target)", include_all=False, multi=False)]
T = 'agent=~"$agent",target="$target"'
detail = dashboard(UIDS["target"], "nightshift: target detail", detail_vars, [
    panel(1, "Up (per probe)", "state-timeline", [f"probe_success{{{T}}}"], 0, 0, 24, 5, legend=["{{probe}}"],
          thresholds=steps((None, RED), (1, GREEN)), mappings=UP_DOWN),
    panel(2, "RTT percentiles", "timeseries", [
        f"histogram_quantile({q}, sum by (le) (rate(probe_icmp_rtt_seconds_bucket{{{T}}}[$__rate_interval])))" for q in (0.5, 0.95, 0.99)],
        0, 5, 12, 8, unit="s", legend=["p50", "p95", "p99"]),
    panel(3, "Loss", "timeseries", [f"probe_icmp_loss_ratio{{{T}}}"], 12, 5, 12, 8, unit="percentunit", legend=["{{probe}}"]),
    panel(4, "Probe duration and TCP connect time", "timeseries",
          [f"probe_duration_seconds{{{T}}}", f"probe_tcp_connect_seconds{{{T}}}"], 0, 13, 12, 8, unit="s",
          legend=["{{probe}} duration", "{{probe}} connect"]),
    panel(5, "Failure reasons", "timeseries",
          [f"sum by (result) (rate(nightshift_probe_results_total{{{T}}}[$__rate_interval]))"], 12, 13, 12, 8,
          unit="ops", legend=["{{result}}"]),
    panel(6, "SNMP: interface oper status", "state-timeline", [f"ifOperStatus{{{T}}}"], 0, 21, 12, 8,
          legend=["{{ifName}}"], thresholds=steps((None, GREEN), (2, RED), (3, BLUE)), mappings=IF_STATUS),
    panel(7, "SNMP: uptime and interfaces down", "timeseries",
          [f"probe_snmp_uptime_seconds{{{T}}}", f"probe_snmp_interfaces_down{{{T}}}"], 12, 21, 12, 8,
          legend=["uptime (s)", "interfaces down"]),
    panel(8, "SNMP: interface traffic", "timeseries",
          [f"rate(ifHCInOctets{{{T}}}[$__rate_interval]) * 8", f"rate(ifHCOutOctets{{{T}}}[$__rate_interval]) * 8"],
          0, 29, 12, 8, unit="bps", legend=["{{ifName}} in", "{{ifName}} out"]),
    panel(9, "SNMP: interface errors and discards", "timeseries",
          [f"rate(ifInErrors{{{T}}}[$__rate_interval]) + rate(ifOutErrors{{{T}}}[$__rate_interval])",
           f"rate(ifInDiscards{{{T}}}[$__rate_interval]) + rate(ifOutDiscards{{{T}}}[$__rate_interval])"],
          12, 29, 12, 8, unit="pps", legend=["{{ifName}} errors", "{{ifName}} discards"]),
    panel(10, "RTT distribution (heat map)", "heatmap",
          [f"sum by (le) (increase(probe_icmp_rtt_seconds_bucket{{{T}}}[$__rate_interval]))"], 0, 37, 12, 8, unit="s",
          legend=["{{le}}"]),
    panel(11, "Last result", "stat", [f"min(probe_success{{{T}}})"], 12, 37, 12, 8,
          thresholds=steps((None, RED), (1, GREEN)), mappings=UP_DOWN),
], ["target"], [dash_link("NOC overview", "overview"), dash_link("Agent self-health", "agent")])

self_vars = [var("agent", "label_values(probe_success, agent)")]
A = 'agent=~"$agent"'
health = dashboard(UIDS["agent"], "nightshift: agent self-health", self_vars, [
    panel(1, "Scheduler lag p99", "timeseries",
          [f"histogram_quantile(0.99, sum by (agent, le) (rate(nightshift_scheduler_lag_seconds_bucket{{{A}}}[$__rate_interval])))"],
          0, 0, 12, 8, unit="s", legend=["{{agent}}"]),
    panel(2, "Probes per second", "timeseries", [f"sum by (agent, kind) (rate(nightshift_probes_sent_total{{{A}}}[$__rate_interval]))"],
          12, 0, 12, 8, unit="ops", legend=["{{agent}} {{kind}}"]),
    panel(3, "Outbox depth", "timeseries", [f"sum by (agent, sink) (nightshift_outbox_depth{{{A}}})"], 0, 8, 12, 8,
          legend=["{{agent}} {{sink}}"]),
    panel(4, "Notifications", "timeseries",
          [f"sum by (agent, sink, result) (increase(nightshift_notifications_total{{{A}}}[$__rate_interval]))"], 12, 8, 12, 8,
          legend=["{{sink}} {{result}}"]),
    panel(5, "Resident memory", "timeseries", [f"process_resident_memory_bytes * on(instance) group_left(agent) max by (instance, agent) (nightshift_build_info{{{A}}})"],
          0, 16, 12, 8, unit="bytes", legend=["{{agent}}"]),
    panel(6, "CPU", "timeseries", [f"rate(process_cpu_seconds_total[$__rate_interval]) * on(instance) group_left(agent) max by (instance, agent) (nightshift_build_info{{{A}}})"],
          12, 16, 12, 8, unit="percentunit", legend=["{{agent}}"]),
    panel(7, "Probes in flight", "timeseries", [f"sum by (agent, kind) (nightshift_probes_in_flight{{{A}}})"], 0, 24, 12, 8,
          legend=["{{agent}} {{kind}}"]),
    panel(8, "Store errors", "stat", [f"sum(nightshift_store_errors_total{{{A}}})"], 12, 24, 6, 8,
          thresholds=steps((None, GREEN), (1, RED)), mappings=ZERO_OK),
    panel(9, "Scheduler lag (heat map)", "heatmap",
          [f"sum by (le) (increase(nightshift_scheduler_lag_seconds_bucket{{{A}}}[$__rate_interval]))"], 18, 24, 6, 8,
          unit="s", legend=["{{le}}"]),
], ["agent"], [dash_link("NOC overview", "overview"), dash_link("Target detail", "target")])


def main(argv):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboards")
    if len(argv) == 3 and argv[1] == "--out":
        out = argv[2]
    elif len(argv) != 1:
        sys.exit("usage: make-dashboards.py [--out DIR]")
    os.makedirs(out, exist_ok=True)
    for name, d in (("noc-overview.json", overview), ("target-detail.json", detail), ("agent-health.json", health)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv)
