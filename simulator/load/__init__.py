"""``pushlab load``: many real devices, a rate profile, figures you can trust.

The orchestrator (:mod:`simulator.load.orchestrator`) starts the broker, the
providers and the app server in their own processes, spreads devices over
worker processes (:mod:`simulator.load.worker`) and sends through the app
server's REST API at the rate a profile (:mod:`simulator.load.profiles`) asks.
Workers record end-to-end latency in HDR histograms that are merged at the end
(:mod:`simulator.load.stats`). :mod:`simulator.load.sim` runs the same workload
in virtual time.
"""
