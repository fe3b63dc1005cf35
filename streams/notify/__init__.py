"""Notifications of flag changes: signed webhooks and e-mail, delivered at least once.

`config` holds the frozen settings, `compose` the pure decisions (who is notified, what the
body and the e-mail say, the retry schedule, rate limits, which offsets may be committed),
`signing` the Standard Webhooks signature, `delivery` the senders and the delivery log, and
`notifier` the consumer group on the flag topic that ties them together.
"""
