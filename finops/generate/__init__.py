"""Synthetic FOCUS 1.2 billing data for a multi-cloud ML organisation.

Used by ``make demo`` (90 days, 6 teams, three clouds) and by the benchmarks (tens of millions of rows,
streamed in bounded memory). Every value is a pure function of the seed and of the row's identity
(period, slot), computed with a counter-based hash over numpy arrays, so output is identical for the
same arguments and never depends on a Python loop per row.

The model:

* An :class:`Org` (built by :func:`make_org`) holds the teams and their projects, one billing account
  per cloud (AWS payer, GCP billing account, Azure billing profile), the sub-accounts (AWS linked
  accounts per team and environment, one GCP project per team project, Azure subscriptions per team
  and environment, plus one shared account per cloud) and the commitments (savings plans,
  reservations, committed use discounts).
* Each charge period (day or hour) holds a number of *usage slots*; slot ``r`` is resource ``r``
  (GPU/TPU/CPU instances, managed ML jobs, object and block storage, egress, Kubernetes control
  planes), whose team, account, SKU, region, market (spot / on-demand / covered by a commitment) and
  tags are fixed functions of ``r``. Slots fill from 0 upwards, so low-numbered resources run every
  period and the tail comes and goes with the weekly and daily load. A few slots are credits or
  adjustments against the resource in the slot before.
* After the usage of a period, its *structural* rows follow: commitment purchases (one-time for
  all-upfront, recurring per period otherwise), the unused part of each commitment (so purchase fees
  equal used plus unused amortised cost in every period), and at the end of each month the tax rows
  per sub-account, computed from that month's charges.

Costs are exact decimals: unit prices and quantities have six decimals, so
``ListCost == ListUnitPrice * PricingQuantity`` and ``ContractedCost == ContractedUnitPrice *
PricingQuantity`` hold exactly in ``Decimal(38, 15)``.

Choices made so the output passes focus-validator 2.2.1 (FOCUS 1.2 rules): ``InvoiceIssuerName``
equals ``ProviderName`` (a different issuer is read as a marketplace charge whose BilledCost must be
0), every row carries an ``InvoiceId`` (the open month's is provisional), units are in FOCUS unit
format (``GB-Months``). Not modelled: corrections of earlier billing periods (``ChargeClass``),
capacity reservations, marketplace charges, currencies other than USD.
"""

from finops.generate.catalog import CURRENCY as CURRENCY
from finops.generate.catalog import HOURLY_KINDS as HOURLY_KINDS
from finops.generate.catalog import KINDS as KINDS
from finops.generate.catalog import PROVIDER_KEYS
from finops.generate.exports import ExportFormat as ExportFormat
from finops.generate.exports import write_exports
from finops.generate.org import ENVS as ENVS
from finops.generate.org import Account, Commitment, Org, Team, make_org
from finops.generate.plan import Grain as Grain
from finops.generate.rows import generate

__all__ = ["PROVIDER_KEYS", "Account", "Commitment", "Org", "Team", "generate", "make_org", "write_exports"]
