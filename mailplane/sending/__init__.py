"""Sending mail from the designated mailbox: exactly once, within Exchange Online's sending limits.

Modules, one concern each (``docs/sending.md`` tells the whole story):

* :mod:`~mailplane.sending.outgoing`: what to send (``OutgoingMessage``), idempotency keys, splitting by recipient
  count;
* :mod:`~mailplane.sending.governor`: the rate governor's pure decisions (messages per minute, recipients per 24 h);
* :mod:`~mailplane.sending.store`: the store interface, the send states and records; implemented by
  :mod:`~mailplane.sending.sqlite_store` and :mod:`~mailplane.sending.postgres_store`;
* :mod:`~mailplane.sending.graph_drafts` and :mod:`~mailplane.sending.upload`: the Graph calls (drafts with a marker,
  attachments, upload sessions, send, read-back);
* :mod:`~mailplane.sending.response_log`: the redacted API response log of a send test;
* :mod:`~mailplane.sending.sender`: the ``Sender`` that ties them together.
"""
