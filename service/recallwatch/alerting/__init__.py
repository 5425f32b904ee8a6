"""Alerting: rules decide on each evaluated checkpoint; alerts open, repeat and resolve as episodes;
notifications go out through the outbox."""
