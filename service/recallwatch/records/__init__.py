"""Records that several packages share, below all of their users.

- ``alert``: the alert record (key, ids, evidence, resolution), as the rules build it, the store
  keeps it and every channel renders it;
- ``outbox``: a notification message, one delivery attempt's result, and the ``Outbox`` protocol
  that the store implements and delivery reads.

Plain data: nothing here imports recallwatch beyond the foundations (``stats``, ``retry``).
"""
