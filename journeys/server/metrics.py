"""Prometheus metrics of a worker: events processed, lag, flags by rule, dead letters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.health.graph import GraphHealth
from streams.flag_index import FlagIndex
from streams.kafka.follow import Followers
from streams.notify.delivery import DeliveryLog
from streams.worker import Worker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LedgerCollector(Collector):
    """Reads the worker's counters at scrape time (nothing is counted per event here)."""

    def __init__(
        self,
        worker: Worker,
        flags: FlagIndex,
        followers: Followers,
        deliveries: DeliveryLog | None = None,
        health: Mapping[str, GraphHealth] | None = None,
    ) -> None:
        self.worker = worker
        self.flags = flags
        self.followers = followers
        self.deliveries = deliveries
        self.health = health or {}
        """The identity graph's figures by tenant (`streams.graph_health`)."""

    def collect(self) -> Iterator[Metric]:
        """The metric families, as of now."""
        processed = CounterMetricFamily(
            "journeys_records_processed", "Records processed by a stage", labels=["stage"]
        )
        produced = CounterMetricFamily(
            "journeys_records_produced", "Records a stage produced", labels=["stage"]
        )
        batches = CounterMetricFamily("journeys_batches", "Batches processed", labels=["stage"])
        restored = CounterMetricFamily(
            "journeys_state_restored_records", "State records restored", labels=["stage"]
        )
        lag = GaugeMetricFamily(
            "journeys_consumer_lag", "Records waiting", labels=["stage", "partition"]
        )
        worker = self.worker
        stages = (
            ("validate", worker.validate),
            ("ingest", worker.ingest),
            ("journeys", worker.journeys),
        )
        for name, stage in stages:
            processed.add_metric([name], stage.stats.records)
            produced.add_metric([name], stage.stats.outputs)
            batches.add_metric([name], stage.stats.batches)
            restored.add_metric([name], stage.stats.restored)
            runner = self.worker.runners.get(name)
            for partition, waiting in (runner.lag() if runner else {}).items():
                lag.add_metric([name, str(partition)], waiting)
        yield from (processed, produced, batches, restored, lag)
        dead = CounterMetricFamily("journeys_dead_letters", "Records sent to dead letters")
        dead.add_metric([], worker.validate.stats.dead_letters + worker.ingest.stats.dead_letters)
        yield dead
        refused = CounterMetricFamily(
            "journeys_identity_links_refused",
            "Identifiers ingest refused for linking: junk values, blocked values, and links a "
            "tenant's limit held",
            labels=["reason"],
        )
        for reason, count in sorted(self.worker.refused_links.items()):
            refused.add_metric([reason], count)
        yield refused
        yield from self._privacy()
        yield from self._graph()
        standing = GaugeMetricFamily(
            "journeys_flags", "Standing flags by rule and status", labels=["rule", "status"]
        )
        counts = Counter((str(f.get("rule")), str(f.get("status"))) for f in self.flags.all())
        for (rule, status), count in sorted(counts.items()):
            standing.add_metric([rule, status], count)
        yield standing
        changes = CounterMetricFamily("journeys_flag_changes", "Flag changes read")
        changes.add_metric([], self.flags.changes)
        yield changes
        yield from self._followers()
        if self.deliveries is not None:
            yield from self._notifications(self.deliveries)

    def _privacy(self) -> Iterator[Metric]:
        # Tenants and field names only in labels: never a customer id or an identifier.
        expired = CounterMetricFamily(
            "journeys_retention_erased",
            "Customers the retention timer erased (their last event older than the tenant's "
            "retention_days)",
            labels=["tenant"],
        )
        for tenant, count in sorted(self.worker.retention_erased.items()):
            expired.add_metric([tenant], count)
        suppressed = CounterMetricFamily(
            "journeys_erased_identifier_events_dropped",
            "Events ingest dropped for carrying an identifier of an erased customer "
            "(suppress_erased), by the field that carried it",
            labels=["tenant", "field"],
        )
        for (tenant, field), count in sorted(self.worker.suppressed.items()):
            suppressed.add_metric([tenant, field], count)
        erased_dead = CounterMetricFamily(
            "journeys_dead_letters_erased",
            "Dead letters erasure superseded with a tombstone on the dead-letter topic (found "
            "by an erased customer's identifiers)",
            labels=["tenant"],
        )
        for tenant, count in sorted(self.worker.dead_letters_erased.items()):
            erased_dead.add_metric([tenant], count)
        yield from (expired, suppressed, erased_dead)

    def _graph(self) -> Iterator[Metric]:
        # Tenants only in labels: never a customer id or an identifier value.
        families = {
            "customers": "Customers of the tenant's identity graph on this worker",
            "largest_customer_identifiers": "Identifiers held by the tenant's largest customer",
            "suspected_shared_identifiers": "Identifiers seen with more than one distinct "
            "strong identifier (customer_ref, membership_id, email): suspected shared values",
            "most_strong_identifiers": "The most distinct strong identifiers one identifier "
            "was seen with",
            "stats_truncated": "1 when the scan stopped at its cap (partial figures), else 0",
        }
        gauges = {
            name: GaugeMetricFamily(f"journeys_identity_{name}", text, labels=["tenant"])
            for name, text in families.items()
        }
        for tenant, health in sorted(self.health.items()):
            figures = {
                "customers": health.customers,
                "largest_customer_identifiers": health.largest[0][1] if health.largest else 0,
                "suspected_shared_identifiers": health.shared_values,
                "most_strong_identifiers": health.shared[0][1] if health.shared else 0,
                "stats_truncated": int(health.truncated),
            }
            for name, value in figures.items():
                gauges[name].add_metric([tenant], value)
        yield from gauges.values()

    def _notifications(self, log: DeliveryLog) -> Iterator[Metric]:
        families = {
            "delivered": (log.delivered, "Notifications delivered, by receiver kind"),
            "retried": (log.retried, "Notification attempts that failed and were retried"),
            "dead_lettered": (
                log.dead_lettered,
                "Notifications dead-lettered after the last retry",
            ),
        }
        for name, (counts, help_text) in families.items():
            family = CounterMetricFamily(
                f"journeys_notifications_{name}", help_text, labels=["kind"]
            )
            for kind in ("webhook", "email"):
                family.add_metric([kind], counts[kind])
            yield family
        pending = GaugeMetricFamily(
            "journeys_notifications_pending",
            "Flag changes read whose notifications are not settled",
        )
        pending.add_metric([], log.pending)
        yield pending

    def _followers(self) -> Iterator[Metric]:
        skipped = CounterMetricFamily(
            "journeys_follower_skipped_records",
            "Records a follower skipped because it could not apply them",
            labels=["follower"],
        )
        restarts = CounterMetricFamily(
            "journeys_follower_restarts",
            "Times a follower died and was restarted",
            labels=["follower"],
        )
        running = GaugeMetricFamily(
            "journeys_follower_running", "1 while a follower runs, else 0", labels=["follower"]
        )
        for name, health in sorted(self.followers.health.items()):
            skipped.add_metric([name], health.skipped)
            restarts.add_metric([name], health.restarts)
            running.add_metric([name], 1 if health.state == "running" else 0)
        yield from (skipped, restarts, running)


def render_metrics(
    worker: Worker,
    flags: FlagIndex,
    followers: Followers | None = None,
    deliveries: DeliveryLog | None = None,
    health: Mapping[str, GraphHealth] | None = None,
) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    collector = LedgerCollector(worker, flags, followers or Followers(), deliveries, health)
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE
