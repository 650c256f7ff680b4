#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (run after changing them here).

Three dashboards, templated by agent, site and group (and target for the
detail): NOC overview, target detail, agent self-health. Every panel's query
is checked against a real Prometheus by tests/e2e."""
import json, os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'agent=~"$agent",site=~"$site",group=~"$group"'


def var(name, query, include_all=True, multi=True):
    return {"name": name, "label": name, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "includeAll": include_all, "multi": multi, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"} if include_all else {}}


def datasource_var():
    return {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}


def panel(pid, title, kind, exprs, x, y, w=12, h=8, unit=None, legend=None, extra=None):
    p = {"id": pid, "title": title, "type": kind, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": (legend[i] if legend else "")}
                     for i, e in enumerate(exprs)],
         "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []}, "options": {}}
    if kind == "heatmap":
        for t in p["targets"]:
            t["format"] = "heatmap"
    if extra:
        p.update(extra)
    return p


def dashboard(uid, title, variables, panels, tags):
    return {"uid": uid, "title": title, "tags": ["nightshift"] + tags, "timezone": "utc", "schemaVersion": 38,
            "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": [datasource_var()] + variables}, "panels": panels, "editable": True}


common_vars = [var("agent", "label_values(probe_success, agent)"),
               var("site", 'label_values(probe_success{agent=~"$agent"}, site)'),
               var("group", 'label_values(probe_success{agent=~"$agent",site=~"$site"}, group)')]

overview = dashboard("nightshift-noc", "nightshift: NOC overview", common_vars, [
    panel(1, "Open incidents", "stat", [f'sum(nightshift_incidents_open{{agent=~"$agent"}})'], 0, 0, 4, 4),
    panel(2, "Targets down", "stat", [f"count(min by (agent, target) (probe_success{{{SEL}}}) == 0) or vector(0)"], 4, 0, 4, 4),
    panel(3, "Targets up", "stat", [f"count(min by (agent, target) (probe_success{{{SEL}}}) == 1) or vector(0)"], 8, 0, 4, 4),
    panel(4, "Firing alerts", "stat", [f'count(nightshift_alerts{{state="firing",agent=~"$agent"}}) or vector(0)'], 12, 0, 4, 4),
    panel(5, "Pages undelivered", "stat", [f'sum(nightshift_outbox_depth{{agent=~"$agent"}})'], 16, 0, 4, 4),
    panel(6, "Agents reporting", "stat", ['count(up{job=~".*"} == 1 and on(instance) nightshift_build_info)'], 20, 0, 4, 4),
    panel(7, "Health by site and group (share of targets up)", "bargauge",
          [f"avg by (site, group) (min by (agent, site, group, target) (probe_success{{{SEL}}}))"], 0, 4, 12, 8,
          unit="percentunit", legend=["{{site}} / {{group}}"]),
    panel(8, "Open incidents by severity", "timeseries", [f'sum by (severity) (nightshift_incidents_open{{agent=~"$agent"}})'],
          12, 4, 12, 8, legend=["{{severity}}"]),
    panel(9, "Loss by target (heat map)", "heatmap", [f"max by (target) (probe_icmp_loss_ratio{{{SEL}}})"], 0, 12, 12, 9,
          unit="percentunit", legend=["{{target}}"]),
    panel(10, "Round-trip time distribution (heat map)", "heatmap",
          [f"sum by (le) (rate(probe_icmp_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))"], 12, 12, 12, 9, unit="s",
          legend=["{{le}}"]),
    panel(11, "Worst targets: RTT p95", "table",
          [f"topk(10, histogram_quantile(0.95, sum by (target, le) (rate(probe_icmp_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))))"],
          0, 21, 12, 9, unit="s", extra={"targets": [{"refId": "A", "instant": True, "format": "table",
              "expr": f"topk(10, histogram_quantile(0.95, sum by (target, le) (rate(probe_icmp_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))))"}]}),
    panel(12, "Worst targets: failing probes", "table",
          [f"topk(10, sum by (target, probe, reason) (nightshift_probe_failure_reason{{{SEL}}}))"], 12, 21, 12, 9,
          extra={"targets": [{"refId": "A", "instant": True, "format": "table",
              "expr": f"topk(10, sum by (target, probe, reason) (nightshift_probe_failure_reason{{{SEL}}}))"}]}),
], ["noc"])

detail_vars = common_vars + [var("target", f"label_values(probe_success{{{SEL}}}, target)", include_all=False, multi=False)]
T = 'agent=~"$agent",target="$target"'
detail = dashboard("nightshift-target", "nightshift: target detail", detail_vars, [
    panel(1, "Up (per probe)", "state-timeline", [f"probe_success{{{T}}}"], 0, 0, 24, 5, legend=["{{probe}}"]),
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
          legend=["{{ifName}}"]),
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
], ["target"])

self_vars = [var("agent", "label_values(nightshift_build_info, agent)")] if False else [var("agent", "label_values(probe_success, agent)")]
A = 'agent=~"$agent"'
health = dashboard("nightshift-agent", "nightshift: agent self-health", self_vars, [
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
    panel(8, "Store errors", "stat", [f"sum(nightshift_store_errors_total{{{A}}})"], 12, 24, 12, 8),
], ["agent"])

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboards")
for name, d in (("noc-overview.json", overview), ("target-detail.json", detail), ("agent-health.json", health)):
    with open(os.path.join(here, name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
print("wrote", here)
