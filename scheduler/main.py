"""`pocketkube scheduler`: flags and wiring only; the loop lives in scheduler.scheduler.

Builds the client from the kubeconfig (or ``--server``/``--token``), three
informers (pods, nodes, services), the Scheduler with the API-backed binder
and event recorder, and, with ``--leader-elect true`` (the default, as
kube-scheduler), a Lease-based leader elector: every replica keeps its
informers and queue warm, only the lease holder schedules, and a replica
that loses the lease stops binding and stands for election again.

SIGTERM/SIGINT stop it cleanly: the current term ends, in-flight binds
finish, pending events are flushed and the Lease is released so a standby
takes over at once.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from api import resources as R
from client.cache import namespace_index
from client.informer import SharedInformers
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.leaderelection import (LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, ApiLeaseLock,
                                   LeaderElectionConfig, LeaderElector, default_identity, run_forever)
from client.rest import Client
from client.events import ClientEventSink, EventRecorder
from scheduler.binder import ClientBinder
from scheduler.plugins import DEFAULT_WEIGHTS, parse_weights
from scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

log = logging.getLogger("scheduler")

# Finished pods hold no resources; upstream's scheduler does not watch them either.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


def _bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube scheduler",
                                description="Run the pocketkube scheduler (places pods on nodes).")
    add_connection_flags(p)
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME,
                   help="schedule pods whose spec.schedulerName is this (default default-scheduler)")
    p.add_argument("--leader-elect", type=_bool, default=True, metavar="true|false",
                   help="elect a leader through a Lease before scheduling (default true)")
    p.add_argument("--lease-namespace", default="kube-system", help="namespace of the leader Lease")
    p.add_argument("--lease-name", default=None,
                   help="name of the leader Lease (default kube-scheduler, or the scheduler name if not default)")
    p.add_argument("--identity", default=None,
                   help="leader election identity, unique per replica (default hostname_random); a replica "
                        "restarted with the same identity takes its own lease back without waiting for it to expire")
    p.add_argument("--leader-elect-lease-duration", type=float, default=LEASE_DURATION,
                   help="seconds a lease stays valid after its last renewal (default 15)")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=RENEW_DEADLINE,
                   help="seconds the leader keeps trying to renew before it stops acting (default 10)")
    p.add_argument("--leader-elect-retry-period", type=float, default=RETRY_PERIOD,
                   help="seconds between renewals and between a standby's attempts (default 2)")
    p.add_argument("--weights", default=None,
                   help="score plugin weights, e.g. LeastAllocated=2,SelectorSpread=0 (defaults: "
                        + ",".join(f"{k}={v}" for k, v in DEFAULT_WEIGHTS.items()) + ")")
    p.add_argument("--bind-workers", type=int, default=8, help="concurrent binds, one connection each (default 8)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0,
                   help="stop filtering after this share of nodes is feasible (0 = adaptive, as upstream)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        weights = parse_weights(args.weights)
    except ValueError as e:
        print(f"pocketkube scheduler: error: --weights: {e}", file=sys.stderr)
        sys.exit(2)
    config = config_or_exit("scheduler", args)

    identity = args.identity or default_identity()
    # Its binds, pods/status patches and Events (the per-pod writes) take the client's lean transport.
    client = Client(config, timeout=30.0, user_agent="pocketkube-scheduler/0.1")
    stop = stop_on_signals(log)

    informers = SharedInformers(client)
    pods = informers.informer_for(R.PODS, field_selector=POD_FIELD_SELECTOR)
    nodes = informers.informer_for(R.NODES)
    services = informers.informer_for(R.SERVICES, indexers={"namespace": namespace_index})

    elector = None
    lease_client = None
    if args.leader_elect:
        lease_client = Client(config, timeout=min(5.0, args.leader_elect_renew_deadline / 2))
        lease_name = args.lease_name or ("kube-scheduler" if args.scheduler_name == DEFAULT_SCHEDULER_NAME
                                         else args.scheduler_name)
        try:
            le_config = LeaderElectionConfig(
                lock=ApiLeaseLock(lease_client, args.lease_namespace, lease_name), identity=identity,
                lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
                on_new_leader=lambda who: log.info("new leader: %s%s", who, " (me)" if who == identity else ""),
            )
        except ValueError as e:
            print(f"pocketkube scheduler: error: --leader-elect-*: {e}", file=sys.stderr)
            sys.exit(2)
        elector = LeaderElector(le_config)

    sched: Scheduler | None = None
    recorder = EventRecorder(ClientEventSink(client), component=args.scheduler_name, instance=identity,
                             busy=lambda: sched is not None and sched.busy())
    sched = Scheduler(
        ClientBinder(client), recorder=recorder, scheduler_name=args.scheduler_name, weights=weights,
        services=lambda ns: services.store.by_index("namespace", ns),
        bind_workers=args.bind_workers, percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
        can_bind=elector.is_leader if elector else None,
    )
    sched.register(pods, nodes, services)
    log.info("starting scheduler %s (identity %s, pid %d) against %s", args.scheduler_name, identity,
             os.getpid(), config.server)
    informers.start_all()
    while not stop.is_set() and not informers.wait_for_sync(1.0):
        log.info("waiting for the informers to sync with %s", config.server)
    recorder.start()
    try:
        if stop.is_set():
            return
        if elector is not None:
            elector.config.on_started_leading = sched.run
            run_forever(elector, stop)
        else:
            sched.run(stop)
    finally:
        sched.queue.close()
        recorder.stop(flush_timeout=2.0)
        informers.stop_all()
        client.close()
        if lease_client is not None:
            lease_client.close()
        log.info("scheduler stopped")


if __name__ == "__main__":
    main()
