"""Resources: attributes, ResourceId and ResourceName of usage slots, pure functions of (seed, slot)."""

from __future__ import annotations

import numpy as np
import polars as pl

from finops.generate.catalog import _NREG, _PIDX, _SKU_SPOT, _SPOT_P, _STEADY_P, KINDS
from finops.generate.columns import _hex_series
from finops.generate.hashing import _S, _bij40, _cum, _mix, _mix_int, _pick, _unif
from finops.generate.names import _N_STYLES
from finops.generate.plan import _Plan
from finops.generate.tables import _SKU_RID_FMT, _VAR_ACCT, _VAR_NONE, _VAR_REGION, _VAR_RG, _VAR_WS, _VAR_ZONE

_STYLE_CUM = _cum(np.array([0.70, 0.12, 0.05, 0.04, 0.04, 0.05]))
_UNTAGGED_P = 0.08


def _attrs(plan: _Plan, r: np.ndarray) -> dict[str, np.ndarray]:
    """Numeric attributes of resources ``r``: pure functions of (seed, resource index)."""
    seed, t = plan.seed, plan.tables
    r = np.asarray(r, dtype=np.int64)

    def u(name: str) -> np.ndarray:
        return _unif(seed, _S[name], r)

    team = _pick(u("team"), t["team_cum"])
    prov = plan.provs[_pick(u("prov"), t["prov_cum"][team])]
    kind = _pick(u("kind"), t["kind_cum"][team, prov])
    sku = t["sku_idx"][prov, kind, _pick(u("sku"), t["sku_cum"][prov, kind])]
    region = np.where(u("region_home") < 0.65, t["home"][team, prov],
                      _pick(u("region"), _cum(np.array([0.4, 0.25, 0.15, 0.12, 0.08]))))
    spot = _SKU_SPOT[sku] & (u("spot") < np.select([kind == KINDS.index(k) for k in _SPOT_P],
                                                   list(_SPOT_P.values()), 0.0))
    # Anchors.
    an = plan.anchors
    na = int(an["n"])
    cover = np.full(len(r), -1, dtype=np.int64)
    m = r < na
    if m.any():
        ai = r[m]
        team[m], prov[m], kind[m], sku[m], spot[m], cover[m] = (an["team"][ai], an["prov"][ai], an["kind"][ai],
                                                               an["sku"][ai], an["spot"][ai], an["cover"][ai])
        region[m] = np.where(an["region"][ai] >= 0, an["region"][ai], t["home"][team[m], prov[m]])
    # Commitment coverage (non-anchors).
    ucov = u("cover")
    baseload = r < plan.cover_limit  # commitments cover resources that run every period
    for a in plan.actives:
        elig = (~m) & baseload & (cover < 0) & (prov == _PIDX[a.c.provider]) & ~spot & (ucov < a.c.coverage)
        elig &= np.isin(kind, [KINDS.index(k) for k in a.c.kinds])
        if a.sku is not None:
            elig &= (sku == a.sku) & (region == a.region)
        cover[elig] = a.index
    project = np.minimum((u("project") * t["n_projects"][team]).astype(np.int64), t["n_projects"][team] - 1)
    env = _pick(u("env"), np.array([0.55, 0.75, 1.0]))
    envgroup = (env > 0).astype(np.int64)
    acct = np.where(prov == _PIDX["gcp"], t["proj_acct"][team, project], t["env_acct"][prov, team, envgroup])
    acct = np.where((kind == KINDS.index("k8s")) & (u("shared") < 0.5), t["shared"][prov], acct)
    tagstyle = _pick(u("tagstyle"), _STYLE_CUM)
    tagstyle = np.where((tagstyle == 1) & ~np.isin(kind, [0, 2, 3]), 0, tagstyle)  # launcher tags: gpu/tpu/ml
    untagged = u("tag") < _UNTAGGED_P
    workload = (u("workload") * 4).astype(np.int64)
    maxp = t["maxp"]
    tag_idx = ((((prov * len(plan.org.teams) + team) * maxp + project) * 3 + env) * _N_STYLES + tagstyle) * 4 + workload
    tag_idx = np.where(untagged, len(t["tags"]) - 1, tag_idx)
    steady = u("steady") < np.select([kind == KINDS.index(k) for k in _STEADY_P], list(_STEADY_P.values()), 1.0)
    steady |= cover >= 0
    size_gb = np.exp(np.log(200.0) + u("size") * np.log(2500.0))  # 200 GB .. 500 TB, log-uniform
    size_gb = np.where(kind == KINDS.index("block"), np.minimum(size_gb / 50, 16384.0), size_gb)
    return {"r": r, "team": team, "prov": prov, "kind": kind, "sku": sku, "region": region, "spot": spot,
            "cover": cover, "project": project, "env": env, "acct": acct, "tag": tag_idx, "steady": steady,
            "size_gb": size_gb, "growth": u("growth") * 0.8,
            "egress_gb": np.exp(np.log(5.0) + u("egress") * np.log(400.0)),  # 5 GB .. 2 TB a day
            "zone": (u("zone") * 3).astype(np.int64)}


def _resource_strings(plan: _Plan, a: dict[str, np.ndarray]) -> tuple[pl.Series, pl.Series]:
    """ResourceId and ResourceName of a block of resources."""
    t = plan.tables
    maxp = t["maxp"]
    tp = a["team"] * maxp + a["project"]
    h16 = _hex_series(_mix(a["r"].astype(np.uint64) + np.uint64(_mix_int(plan.seed + 991))), 8)
    h10 = _hex_series(_bij40(plan.seed, a["r"]), 5)
    azure_sa = (a["prov"] == _PIDX["azure"]) & (a["kind"] == KINDS.index("object"))
    base = pl.DataFrame({
        "tp": t["team_project"].gather(tp), "alnum": t["team_project_alnum"].gather(tp),
        "word": t["word"].gather(a["sku"]), "h10": h10, "h16": h16, "sa": azure_sa})
    names = base.select(
        pl.when(pl.col("sa")).then(pl.concat_str([pl.col("alnum"), pl.col("h10")]))
        .otherwise(pl.concat_str([pl.col("tp"), pl.col("word"), pl.col("h10")], separator="-")).alias("name"),
        pl.col("h16"))
    fmt = _SKU_RID_FMT[a["sku"]]
    var_t = t["rid_vars"][fmt]
    off = t["rid_offsets"]
    region_i = a["prov"] * _NREG + a["region"]
    local = {_VAR_NONE: np.zeros(len(fmt), dtype=np.int64), _VAR_REGION: region_i, _VAR_ACCT: a["acct"],
             _VAR_ZONE: region_i * 3 + a["zone"], _VAR_RG: (a["team"] * maxp + a["project"]) * 3 + a["env"],
             _VAR_WS: a["team"] * maxp + a["project"]}
    cols: list[pl.Series] = []
    for j in range(3):
        cols.append(t["rid_lits"][j].gather(fmt))
        idx = np.zeros(len(fmt), dtype=np.int64)
        for vt, loc in local.items():
            sel = var_t[:, j] == vt
            idx[sel] = off[vt] + loc[sel] if vt != _VAR_NONE else 0
        cols.append(t["rid_pieces"].gather(idx))
    cols.append(t["rid_lits"][3].gather(fmt))
    tail = pl.select(pl.when(pl.Series(t["rid_hex"][fmt])).then(names["h16"]).otherwise(names["name"])).to_series()
    frame = pl.DataFrame({f"c{i}": c for i, c in enumerate([*cols, tail])})
    rid = frame.select(pl.concat_str(pl.all()).alias("rid")).to_series()
    return rid, names["name"]
