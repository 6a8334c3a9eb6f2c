"""Usage rows: usage, credit and adjustment rows of a run of usage cells, built column by column."""

from __future__ import annotations

import numpy as np
import polars as pl

from finops import focus
from finops.generate.catalog import (
    _CONTRACTED_MICRO,
    _LIST_MICRO,
    _MICRO,
    _NREG,
    _NSKU,
    _PROVIDERS,
    _SKU_UNIT,
    _SPOT_DISCOUNT,
    _UNITS,
    CURRENCY,
    HOURLY_KINDS,
    KINDS,
)
from finops.generate.columns import _const, _dec, _dt, _table
from finops.generate.hashing import _S, _unif
from finops.generate.plan import _commit_micro, _Plan
from finops.generate.resources import _attrs, _resource_strings

_CREDIT_P = 0.015
_ADJUST_P = 0.002


def _needed(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sorted resource indices a chunk refers to: its slots and the slot before each (credits and
    adjustments are about the previous slot). Slots of one period are a contiguous run, so this is
    a union of intervals, not a sort."""
    cut = np.flatnonzero(np.diff(p)) + 1
    starts = np.maximum(r[np.r_[0, cut]] - 1, 0)
    ends = r[np.r_[cut - 1, len(r) - 1]] + 1
    order = np.argsort(starts, kind="stable")
    merged: list[list[int]] = []
    for a, b in zip(starts[order].tolist(), ends[order].tolist(), strict=True):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in merged])


def _usage_chunk(plan: _Plan, c0: int, c1: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Usage, credit and adjustment rows for usage cells ``c0 .. c1-1`` (period-major), and a small
    frame of helper columns (account, month, commitment, period) for the running totals."""
    seed, t = plan.seed, plan.tables
    cells = np.arange(c0, c1, dtype=np.int64)
    p = np.searchsorted(plan.cum_end, cells, side="right")
    r = cells - (plan.cum_end[p] - plan.usage[p])
    need = _needed(p, r)
    attrs = _attrs(plan, need)
    na = int(plan.anchors["n"])
    raw_credit = (_unif(seed, _S["credit"], attrs["r"]) < _CREDIT_P) & (attrs["r"] >= na)
    ix = np.searchsorted(need, r)
    ip = np.searchsorted(need, np.maximum(r - 1, 0))
    parent_ok = (r >= na) & (r >= 1) & ~raw_credit[ip] & (attrs["cover"][ip] < 0)
    credit = raw_credit[ix] & parent_ok
    adjust = ~raw_credit[ix] & parent_ok & (_unif(seed, _S["adjust"], r, p) < _ADJUST_P)
    derived = credit | adjust
    bi = np.where(derived, ip, ix)  # block index of the resource the row is about
    br = attrs["r"][bi]
    g = {k: v[bi] for k, v in attrs.items()}
    kind, sku, region, prov = g["kind"], g["sku"], g["region"], g["prov"]
    n = len(cells)

    # Market.
    cover = g["cover"]
    cc = np.where(cover >= 0, cover, len(plan.actives))
    committed = (cover >= 0) & (p >= t["c_start"][cc]) & (p < t["c_end"][cc])
    spot = g["spot"]

    # Quantity (micro-units of the pricing unit).
    hours = plan.grain_hours
    use = _unif(seed, _S["use"], br, p)
    use2 = _unif(seed, _S["use2"], br, p)
    frac = np.where(g["steady"], np.where(use < 0.93, 1.0, 0.4 + 0.6 * use2), 0.05 + 0.95 * use2 ** 0.8)
    day = plan.day_of[p]
    month_h = plan.month_hours[plan.month_of[p]]
    size = g["size_gb"] * np.where(kind == KINDS.index("block"), 1.0, 1.0 + g["growth"] * day / 365.0)
    noise = _unif(seed, _S["noise"], br, p)
    qty = np.select(
        [np.isin(kind, [KINDS.index(k) for k in HOURLY_KINDS]), kind == KINDS.index("egress")],
        [frac * hours, g["egress_gb"] * (0.3 + 1.4 * noise) * hours / 24.0],
        size * hours / month_h)
    q_micro = np.maximum(np.rint(qty * _MICRO).astype(np.int64), 1)

    # Unit prices (micro-dollars).
    lst = _LIST_MICRO[sku, region]
    con = _CONTRACTED_MICRO[sku, region]
    lo_d = np.select([kind == KINDS.index(k) for k in _SPOT_DISCOUNT], [v[0] for v in _SPOT_DISCOUNT.values()], 0.6)
    hi_d = np.select([kind == KINDS.index(k) for k in _SPOT_DISCOUNT], [v[1] for v in _SPOT_DISCOUNT.values()], 0.7)
    spot_u = _unif(seed, _S["spotprice"], sku * _NREG + region, day)
    spot_price = np.rint(lst * (1.0 - (lo_d + (hi_d - lo_d) * spot_u))).astype(np.int64)
    cup = np.where(spot, spot_price, con)
    eup = np.where(committed, _commit_micro(plan.actives, cover, sku, region), cup)

    # Credits and adjustments: amounts from the resource's contracted cost this period.
    base_cost = cup.astype(np.float64) * q_micro / _MICRO  # micro-dollars
    pct = 0.1 + 0.9 * _unif(seed, _S["creditpct"], br, p)
    adj_type = (_unif(seed, _S["adjtype"], br, p) < 0.15).astype(np.int64)  # 1: small positive rounding
    amount = np.where(credit, -np.maximum(np.rint(base_cost * pct), 1),
                      np.where(adj_type == 1, np.maximum(np.rint(base_cost * 0.002), 1),
                               -np.maximum(np.rint(base_cost * pct), 1))).astype(np.int64)
    usage = ~derived
    bill_zero = committed & usage

    pq_ = _dec(q_micro, usage)
    lup = _dec(lst, usage)
    cup_s = _dec(cup, usage)
    amount_s = _dec(amount, derived)
    list_cost = pl.select(pl.coalesce(lup * pq_, amount_s)).to_series()
    contracted = pl.select(pl.coalesce(cup_s * pq_, amount_s)).to_series()
    effective = pl.select(pl.coalesce(_dec(eup, usage) * pq_, amount_s)).to_series()
    billed = pl.select(pl.when(pl.Series(bill_zero)).then(pl.lit(0, focus.DECIMAL)).otherwise(contracted)).to_series()

    # Strings.
    rid_block, name_block = _resource_strings(plan, attrs)
    null_sku = _NSKU
    sku_u = np.where(usage, sku, null_sku)
    sr = np.where(usage, sku * _NREG + region, len(t["sku_id"]) - 1)
    spot_i = (spot & usage).astype(np.int64)
    desc_idx = np.where(usage, (sku * _NREG + region) * 2 + spot_i,
                        np.where(credit, t["desc_credit"] + prov * 2 + (_unif(seed, _S["credittype"], br) < 0.5),
                                 t["desc_adjust"] + prov * 2 + adj_type))
    region_i = prov * _NREG + region
    zoned = np.isin(kind, [KINDS.index(k) for k in ("gpu", "cpu", "tpu", "block")]) & np.array(
        [q.zoned for q in _PROVIDERS])[prov]
    zone_idx = np.where(zoned, region_i * 3 + g["zone"], len(t["zone"]) - 1)
    nc = len(plan.actives)
    c_idx = np.where(committed & usage, cover, nc)
    cat_idx = np.select([credit, adjust], [1, 2], 0)
    pricing_cat = np.where(derived, 3, np.where(committed, 2, np.where(spot, 1, 0)))
    month = plan.month_of[p]
    unit_i = np.where(usage, _SKU_UNIT[sku], len(_UNITS))
    c_spend = t["c_spend"][c_idx]
    cdq = pl.select(pl.when(pl.Series(c_spend)).then(effective)
                    .when(pl.Series(c_idx < nc)).then(pq_).otherwise(None)).to_series()
    acct = g["acct"]

    cols: dict[str, pl.Series] = {
        "AvailabilityZone": t["zone"].gather(zone_idx),
        "BilledCost": billed,
        "BillingAccountId": t["billing_id"].gather(acct),
        "BillingAccountName": t["billing_name"].gather(acct),
        "BillingAccountType": t["billing_type"].gather(acct),
        "BillingCurrency": _const(CURRENCY, n),
        "BillingPeriodEnd": t["bp_end"].gather(month),
        "BillingPeriodStart": t["bp_start"].gather(month),
        "CapacityReservationId": _const(None, n),
        "CapacityReservationStatus": _const(None, n),
        "ChargeCategory": _table(["Usage", "Credit", "Adjustment"]).gather(cat_idx),
        "ChargeClass": _const(None, n),
        "ChargeDescription": t["desc"].gather(desc_idx),
        "ChargeFrequency": _table(["Usage-Based", "One-Time"]).gather(adjust.astype(np.int64)),
        "ChargePeriodEnd": _dt(plan.bounds_us[p + 1]),
        "ChargePeriodStart": _dt(plan.bounds_us[p]),
        "CommitmentDiscountCategory": t["c_category"].gather(c_idx),
        "CommitmentDiscountId": t["c_id"].gather(c_idx),
        "CommitmentDiscountName": t["c_name"].gather(c_idx),
        "CommitmentDiscountQuantity": cdq,
        "CommitmentDiscountStatus": _table(["Used"]).gather(np.where(c_idx < nc, 0, 1)),
        "CommitmentDiscountType": t["c_type"].gather(c_idx),
        "CommitmentDiscountUnit": t["c_unit"].gather(c_idx),
        "ConsumedQuantity": pq_,
        "ConsumedUnit": t["unit"].gather(unit_i),
        "ContractedCost": contracted,
        "ContractedUnitPrice": cup_s,
        "EffectiveCost": effective,
        "InvoiceId": t["invoice"].gather(prov * len(plan.months) + month),
        "InvoiceIssuerName": t["issuer"].gather(prov),
        "ListCost": list_cost,
        "ListUnitPrice": lup,
        "PricingCategory": _table(["Standard", "Dynamic", "Committed"]).gather(pricing_cat),
        "PricingCurrency": _const(CURRENCY, n),
        "PricingCurrencyContractedUnitPrice": cup_s,
        "PricingCurrencyEffectiveCost": effective,
        "PricingCurrencyListUnitPrice": lup,
        "PricingQuantity": pq_,
        "PricingUnit": t["unit"].gather(unit_i),
        "ProviderName": t["provider_name"].gather(prov),
        "PublisherName": t["publisher"].gather(prov),
        "RegionId": t["region_id"].gather(region_i),
        "RegionName": t["region_name"].gather(region_i),
        "ResourceId": rid_block.gather(bi),
        "ResourceName": name_block.gather(bi),
        "ResourceType": t["rtype"].gather(sku),
        "ServiceCategory": t["category"].gather(sku),
        "ServiceName": t["service"].gather(sku),
        "ServiceSubcategory": t["subcategory"].gather(sku),
        "SkuId": t["sku_id"].gather(sr),
        "SkuMeter": t["sku_meter"].gather(sku_u),
        "SkuPriceDetails": t["sku_details"].gather(sku_u),
        "SkuPriceId": t["sku_price_id"].gather(np.where(usage, sr * 2 + spot_i, len(t["sku_price_id"]) - 1)),
        "SubAccountId": t["sub_id"].gather(acct),
        "SubAccountName": t["sub_name"].gather(acct),
        "SubAccountType": t["sub_type"].gather(acct),
        "Tags": t["tags"].gather(g["tag"]),
    }
    frame = pl.DataFrame([s.alias(k) for k, s in cols.items()])
    helper = pl.DataFrame({"acct": acct, "month": month, "commit": np.where(committed & usage, cover, -1),
                           "period": p})
    return frame, helper
