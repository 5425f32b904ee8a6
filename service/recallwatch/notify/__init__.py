"""Alert delivery: Slack, generic webhooks (Standard Webhooks signed) and Alertmanager.

- ``slack``, ``webhook``, ``alertmanager``: what each channel's message looks like (pure);
- ``channels``: configured channels as delivery targets; bodies rendered once per message;
- ``delivery``: one attempt, retry classification and backoff, and the per-channel dispatcher
  over an outbox (the store's, or ``MemoryOutbox``).
"""

from __future__ import annotations
