"""``pushlab load``: many real devices, a rate profile, figures you can trust.

The orchestrator (:mod:`simulator.load.orchestrator`) starts the broker, the
providers and the app server in their own processes, spreads devices over
worker processes (:mod:`simulator.load.worker`) and sends through the app
server's REST API at the rate a profile (:mod:`simulator.load.profiles`) asks.
Workers record end-to-end latency in HDR histograms that are merged at the end
(:mod:`simulator.load.stats`). Each device's MQTT connection is a lean asyncio
protocol (:mod:`simulator.load.lean_mqtt`); the sender uses a lean HTTP/1.1
keep-alive client (:mod:`simulator.load.http1`). Shards can run on other
machines (``pushlab load worker --shard i/n``). :mod:`simulator.load.sim` runs
the same workload in virtual time; both go through the phases and share the
pacing, drain rule, fault report and summary of :mod:`simulator.load.harness`.
"""
