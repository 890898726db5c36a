#!/usr/bin/python3
"""Checks `netbackd stats --prometheus` against `netbackd stats --json` of the same netbackd:
the text parses with the Prometheus client library's own parser, every JSON value has its
sample under the same name, and the held-resource gauges agree (counters may move between the
two calls). Usage: prometheus_check.py <prometheus file> <json file>"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

prom_text = open(sys.argv[1]).read()
stats = json.load(open(sys.argv[2]))
samples = {}
for family in text_string_to_metric_families(prom_text):
    for s in family.samples:
        # By family: the library names a counter's samples <family>_total, OpenMetrics style.
        samples[(family.name, tuple(sorted(s.labels.items())))] = s.value

failures = []


def expect(name, labels, value=None):
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        failures.append(f"no sample {name}{labels}")
    elif value is not None and samples[key] != value:
        failures.append(f"{name}{labels} = {samples[key]}, --json says {value}")


for vif, fields in stats["vifs"].items():
    domid, devid = vif[3:].split("_")
    labels = {"vif": f"{domid}.{devid}", "domid": domid, "devid": devid}
    for key, value in fields.items():
        if isinstance(value, str):
            expect(f"netbackd_vif_{key}", {**labels, key: value}, 1)
        else:
            expect(f"netbackd_vif_{key}", labels)
for worker, fields in stats["workers"].items():
    for key in fields:
        expect(f"netbackd_worker_{key}", {"worker": worker.removeprefix("worker")})
for key, value in stats["resources"].items():
    if isinstance(value, dict):
        for pool in value:
            expect(f"netbackd_resource_{key}", {"pool": pool})
    elif key in ("vifs", "mapped_pages", "bound_ports"):
        expect(f"netbackd_resource_{key}", {}, value)
    else:
        expect(f"netbackd_resource_{key}", {})

if not stats["vifs"] or not stats["workers"]:
    failures.append("--json reported no vifs or no workers: nothing was compared")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"prometheus: {len(samples)} samples match --json")
