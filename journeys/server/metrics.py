"""Prometheus metrics of a worker: events processed, lag, flags by rule, dead letters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
    ) -> None:
        self.worker = worker
        self.flags = flags
        self.followers = followers
        self.deliveries = deliveries

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
        for name, stage in (("ingest", self.worker.ingest), ("journeys", self.worker.journeys)):
            processed.add_metric([name], stage.stats.records)
            produced.add_metric([name], stage.stats.outputs)
            batches.add_metric([name], stage.stats.batches)
            restored.add_metric([name], stage.stats.restored)
            runner = self.worker.runners.get(name)
            for partition, waiting in (runner.lag() if runner else {}).items():
                lag.add_metric([name, str(partition)], waiting)
        yield from (processed, produced, batches, restored, lag)
        dead = CounterMetricFamily("journeys_dead_letters", "Records sent to dead letters")
        dead.add_metric([], self.worker.ingest.stats.dead_letters)
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
) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(worker, flags, followers or Followers(), deliveries))
    return generate_latest(registry), CONTENT_TYPE
