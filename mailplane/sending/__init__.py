"""Sending mail from the designated mailbox: exactly once, within Exchange Online's sending limits.

Modules, one concern each:

* :mod:`~mailplane.sending.outgoing`: what to send (:class:`OutgoingMessage`), idempotency keys, splitting by
  recipient count;
* :mod:`~mailplane.sending.governor`: the rate governor's pure decisions (messages per minute, recipients per 24 h);
* :mod:`~mailplane.sending.store` and :mod:`~mailplane.sending.sqlite_store`: send state, queue, recipient ledger and
  send-test status, persisted.
"""
