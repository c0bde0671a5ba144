"""Failover drills: break the stack on purpose, measure what clients saw, put it back.

- playbook.py: YAML playbooks (steps + thresholds), validated on load;
- faults.py: one `FaultTarget` interface, on the lab by PID and on real hosts over SSH + systemd;
- probes.py: write/read probes through HAProxy, watchers of Patroni and HAProxy;
- measure.py: the arithmetic (gaps, lost writes, split brain);
- runner.py: preflight, steps, recovery, figures;
- history.py / report.py: JSON-lines history in the state dir, Markdown reports.

Importing this package is cheap; the modules import their heavy dependencies lazily.
"""
