"""The use cases: every action a person or the scheduler can take, as a function that takes a
:class:`~finops.config.Config` (and the action's own arguments) and returns a typed result.

The CLI parses arguments for them and prints what they return; the scheduler logs it; the dashboard
shows it. No use case prints, exits or reads ``sys.argv``; long ones report through a
:class:`~finops.services.progress.Progress` they are given. Each module holds one area:

- :mod:`~finops.services.ingest` — export files into the billing store; FOCUS validation
- :mod:`~finops.services.collect` — billing and prices from the clouds' APIs; account discovery
- :mod:`~finops.services.prices` — the price catalog import and the cheapest offers
- :mod:`~finops.services.queue` — the workload queue and placement
- :mod:`~finops.services.chargeback` — the weekly chargeback: build, write, deliver
- :mod:`~finops.services.store` — store information and maintenance
- :mod:`~finops.services.demo` — generated data and the end-to-end demo

Modules are imported by what uses them, not here, so a command pays only for its own imports.
"""
