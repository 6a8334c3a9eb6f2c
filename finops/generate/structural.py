"""Structural rows: commitment purchases, unused commitment and tax, and the running ledger they need."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import polars as pl

from finops import focus
from finops.generate.catalog import _MICRO, _NREG, _PIDX, _PROVIDERS, _SERVICES, _SKUS, CURRENCY
from finops.generate.plan import _EXACT, _US_PER_HOUR, _Active, _Plan


def _us_to_dt(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


def _dmicro(micro: int) -> Decimal:
    return Decimal(micro) / _MICRO


class _Ledger:
    """Running exact totals the structural rows need: commitment use per period, charges per
    (account, month) for tax."""

    def __init__(self) -> None:
        self.used: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}
        self.month: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)

    def add_usage(self, frame: pl.DataFrame, helper: pl.DataFrame) -> None:
        with localcontext(_EXACT):
            self._add_usage(frame, helper)

    def _add_usage(self, frame: pl.DataFrame, helper: pl.DataFrame) -> None:
        h = pl.concat([helper, frame.select("BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
                                            "PricingQuantity")], how="horizontal")
        for row in h.group_by("acct", "month").agg(
                pl.col("BilledCost", "EffectiveCost", "ListCost", "ContractedCost").sum()).iter_rows():
            acc = self.month[(row[0], row[1])]
            for i in range(4):
                acc[i] += row[2 + i]
        used = h.filter(pl.col("commit") >= 0).group_by("commit", "period").agg(
            pl.col("EffectiveCost").sum(), pl.col("PricingQuantity").sum())
        for c, p, eff, q in used.iter_rows():
            prev = self.used.get((c, p), (Decimal(0), Decimal(0)))
            self.used[(c, p)] = (prev[0] + eff, prev[1] + q)

    def add_rows(self, rows: list[dict[str, Any]], accounts: list[int], month: int) -> None:
        """Count structural rows towards the month's totals (call inside the exact context)."""
        for row, ai in zip(rows, accounts, strict=True):
            acc = self.month[(ai, month)]
            for i, k in enumerate(("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")):
                acc[i] += row[k]


def _base_row(plan: _Plan, acct: int, start_us: int, end_us: int, month: int) -> dict[str, Any]:
    a = plan.org.accounts[acct]
    prov = _PROVIDERS[_PIDX[a.provider]]
    m_start, m_end = plan.months[month]
    row: dict[str, Any] = {c.name: None for c in focus.COLUMNS}
    row.update({
        "BillingAccountId": a.billing_account_id, "BillingAccountName": a.billing_account_name,
        "BillingAccountType": prov.billing_account_type, "BillingCurrency": CURRENCY,
        "BillingPeriodStart": m_start, "BillingPeriodEnd": m_end,
        "ChargePeriodStart": _us_to_dt(start_us), "ChargePeriodEnd": _us_to_dt(end_us),
        "InvoiceId": plan.invoice_ids.get((_PIDX[a.provider], month)), "InvoiceIssuerName": prov.issuer,
        "PricingCurrency": CURRENCY, "ProviderName": prov.name, "PublisherName": prov.publisher,
        "SubAccountId": a.sub_account_id, "SubAccountName": a.sub_account_name,
        "SubAccountType": prov.sub_account_type,
    })
    return row


def _commitment_row(plan: _Plan, a: _Active, start_us: int, end_us: int, month: int) -> dict[str, Any]:
    row = _base_row(plan, a.c.account, start_us, end_us, month)
    prov = _PROVIDERS[_PIDX[a.c.provider]]
    cat, sub = _SERVICES[a.c.service]
    row.update({
        "CommitmentDiscountCategory": a.c.category, "CommitmentDiscountId": a.c.id,
        "CommitmentDiscountName": a.c.name, "CommitmentDiscountType": a.c.type,
        "CommitmentDiscountUnit": "USD" if a.c.category == "Spend" else "Hours",
        "ResourceId": a.c.id, "ResourceName": a.c.name, "ResourceType": a.c.type,
        "ServiceName": a.c.service, "ServiceCategory": cat, "ServiceSubcategory": sub,
        "SkuId": a.c.sku_id, "SkuMeter": f"{a.c.type} fee", "SkuPriceId": f"{a.c.sku_id}.{a.c.term_days}d",
    })
    if a.region is not None:
        row["RegionId"], row["RegionName"] = prov.regions[a.region][0], prov.regions[a.region][1]
    return row


def _set_costs(row: dict[str, Any], *, billed: Decimal, effective: Decimal, list_cost: Decimal,
               contracted: Decimal) -> None:
    row.update(BilledCost=billed, EffectiveCost=effective, ListCost=list_cost, ContractedCost=contracted,
               PricingCurrencyEffectiveCost=effective)


def _purchase_row(plan: _Plan, a: _Active, p: int, one_time: bool) -> dict[str, Any]:
    step_h = plan.grain_hours
    if one_time:
        start_us, end_us = a.start_us, a.start_us + a.c.term_days * 24 * _US_PER_HOUR
        hours = Decimal(a.c.term_days * 24)
    else:
        start_us, end_us = int(plan.bounds_us[p]), int(plan.bounds_us[p + 1])
        hours = Decimal(step_h)
    row = _commitment_row(plan, a, start_us, end_us, int(plan.month_of[p]))
    if a.c.category == "Spend":
        qty, price = hours, a.hourly
        cdq = price * qty
    else:
        qty, price = hours * a.instances, a.hourly
        cdq = qty
    amount = price * qty
    pay = "All Upfront" if one_time else "recurring fee"
    row.update({
        "ChargeCategory": "Purchase", "ChargeFrequency": "One-Time" if one_time else "Recurring",
        "ChargeDescription": f"{a.c.name} ({pay})", "PricingCategory": "Standard",
        "PricingQuantity": qty, "PricingUnit": "Hours", "ListUnitPrice": price, "ContractedUnitPrice": price,
        "PricingCurrencyListUnitPrice": price, "PricingCurrencyContractedUnitPrice": price,
        "CommitmentDiscountQuantity": cdq,
    })
    _set_costs(row, billed=amount, effective=Decimal(0), list_cost=amount, contracted=amount)
    return row


def _unused_row(plan: _Plan, a: _Active, p: int, ledger: _Ledger) -> dict[str, Any]:
    start_us, end_us = int(plan.bounds_us[p]), int(plan.bounds_us[p + 1])
    row = _commitment_row(plan, a, start_us, end_us, int(plan.month_of[p]))
    used_eff, used_q = ledger.used.pop((a.index, p), (Decimal(0), Decimal(0)))
    if a.c.category == "Spend":
        qty = a.hourly * plan.grain_hours - used_eff
        lup = cup = Decimal(1)
        unit = "USD"
        list_cost = contracted = effective = qty
    else:
        qty = Decimal(a.instances * plan.grain_hours) - used_q
        lup, cup, unit = _dmicro(a.list_micro), _dmicro(a.contracted_micro), "Hours"
        list_cost, contracted, effective = lup * qty, cup * qty, a.hourly * qty
        assert a.sku is not None and a.region is not None
        row.update(SkuId=plan.tables["sku_id"][a.sku * _NREG + a.region],
                   SkuPriceId=plan.tables["sku_price_id"][(a.sku * _NREG + a.region) * 2],
                   SkuMeter=_SKUS[a.sku].meter)
    row.update({
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "CommitmentDiscountStatus": "Unused",
        "ChargeDescription": f"Unused {a.c.type.lower()} commitment: {a.c.name}", "PricingCategory": "Committed",
        "PricingQuantity": qty, "PricingUnit": unit, "ListUnitPrice": lup, "ContractedUnitPrice": cup,
        "PricingCurrencyListUnitPrice": lup, "PricingCurrencyContractedUnitPrice": cup,
        "CommitmentDiscountQuantity": qty,
    })
    _set_costs(row, billed=Decimal(0), effective=effective, list_cost=list_cost, contracted=contracted)
    return row


def _tax_row(plan: _Plan, acct: int, month: int, ledger: _Ledger) -> dict[str, Any]:
    m_start, m_end = plan.months[month]
    start_us = max(int(m_start.timestamp()) * 1_000_000, int(plan.bounds_us[0]))
    end_us = min(int(m_end.timestamp()) * 1_000_000, plan.window_end_us)
    row = _base_row(plan, acct, start_us, end_us, month)
    a = plan.org.accounts[acct]
    prov = _PROVIDERS[_PIDX[a.provider]]
    rate = Decimal(prov.tax_rate)
    sums = ledger.month.pop((acct, month), [Decimal(0)] * 4)
    cent = Decimal("0.01")
    b, e, li, c = ((rate * s).quantize(cent, rounding=ROUND_HALF_EVEN) for s in sums)
    row.update({"ChargeCategory": "Tax", "ChargeFrequency": "Recurring", "ServiceName": "Tax",
                "ServiceCategory": _SERVICES["Tax"][0], "ServiceSubcategory": _SERVICES["Tax"][1],
                "ChargeDescription": f"Sales tax {rate * 100:.3f}% for {m_start:%B %Y}"})
    _set_costs(row, billed=b, effective=e, list_cost=li, contracted=c)
    return row


def _structural_rows(plan: _Plan, p: int, ledger: _Ledger) -> list[dict[str, Any]]:
    """Rows that follow period ``p``'s usage: purchases and unused commitment first (they count towards
    tax), then the month's tax rows."""
    with localcontext(_EXACT):
        return _structural_rows_exact(plan, p, ledger)


def _structural_rows_exact(plan: _Plan, p: int, ledger: _Ledger) -> list[dict[str, Any]]:
    specs = plan.structural[p]
    month = int(plan.month_of[p])
    rows: list[dict[str, Any]] = []
    accounts: list[int] = []
    for spec in specs:
        if spec[0] in ("purchase", "fee"):
            a = plan.actives[spec[1]]
            rows.append(_purchase_row(plan, a, p, spec[0] == "purchase"))
            accounts.append(a.c.account)
    for spec in specs:
        if spec[0] == "unused":
            a = plan.actives[spec[1]]
            rows.append(_unused_row(plan, a, p, ledger))
            accounts.append(a.c.account)
    ledger.add_rows(rows, accounts, month)
    for spec in specs:
        if spec[0] == "tax":
            rows.append(_tax_row(plan, spec[1], spec[2], ledger))
    # Forget use of commitments whose unused row was cut (rows=N smaller than the structure).
    for c in range(len(plan.actives)):
        ledger.used.pop((c, p), None)
    return rows
