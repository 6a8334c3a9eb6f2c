"""String lookup tables of one plan: accounts, regions, SKUs, descriptions, commitments, tags, ResourceIds."""

from __future__ import annotations

import json

import numpy as np

from finops.generate.catalog import _LIST_MICRO, _MICRO, _PIDX, _PROVIDERS, _SERVICES, _SKUS, _UNITS, _Sku
from finops.generate.columns import _dt, _table
from finops.generate.hashing import _Rand
from finops.generate.names import _N_STYLES, _code, _tags
from finops.generate.org import ENVS
from finops.generate.plan import _Plan


def _fmt_price(micro: int) -> str:
    s = f"{micro / _MICRO:.6f}".rstrip("0")
    return s + "00" if s.endswith(".") else s


def _build_tables(plan: _Plan) -> None:
    org, t = plan.org, plan.tables
    accts = org.accounts
    # Per account.
    t["acct_prov"] = np.array([_PIDX[a.provider] for a in accts])
    t["billing_id"] = _table([a.billing_account_id for a in accts])
    t["billing_name"] = _table([a.billing_account_name for a in accts])
    t["billing_type"] = _table([_PROVIDERS[_PIDX[a.provider]].billing_account_type for a in accts])
    t["sub_id"] = _table([a.sub_account_id for a in accts])
    t["sub_name"] = _table([a.sub_account_name for a in accts])
    t["sub_type"] = _table([_PROVIDERS[_PIDX[a.provider]].sub_account_type for a in accts])
    # Per provider.
    t["provider_name"] = _table([p.name for p in _PROVIDERS])
    t["publisher"] = _table([p.publisher for p in _PROVIDERS])
    t["issuer"] = _table([p.issuer for p in _PROVIDERS])
    # Per (provider, region) and (provider, region, zone).
    t["region_id"] = _table([r[0] for p in _PROVIDERS for r in p.regions])
    t["region_name"] = _table([r[1] for p in _PROVIDERS for r in p.regions])
    zones = []
    for p in _PROVIDERS:
        for r in p.regions:
            for z in "abc":
                zones.append(f"{r[0]}{z}" if p.key == "aws" else f"{r[0]}-{z}")
    t["zone"] = _table(zones)
    # Per month and (provider, month).
    t["bp_start"] = _dt(np.array([int(s.timestamp()) * 1_000_000 for s, _ in plan.months]))
    t["bp_end"] = _dt(np.array([int(e.timestamp()) * 1_000_000 for _, e in plan.months]))
    t["invoice"] = _table([plan.invoice_ids.get((p, m)) for p in range(len(_PROVIDERS))
                           for m in range(len(plan.months))])
    # Per SKU / (SKU, region) / (SKU, region, spot).
    t["service"] = _table([s.service for s in _SKUS])
    t["category"] = _table([_SERVICES[s.service][0] for s in _SKUS])
    t["subcategory"] = _table([_SERVICES[s.service][1] for s in _SKUS])
    t["sku_meter"] = _table([s.meter for s in _SKUS])
    t["sku_details"] = _table([json.dumps(dict(s.details), separators=(",", ":"), sort_keys=True) for s in _SKUS])
    t["rtype"] = _table([s.rtype for s in _SKUS])
    t["unit"] = _table(list(_UNITS))
    sku_ids, price_ids, descs = [], [], []
    for i, s in enumerate(_SKUS):
        p = _PROVIDERS[_PIDX[s.provider]]
        for j, (rid, rname, _) in enumerate(p.regions):
            sid = _code(f"{s.provider}:{s.service}:{s.name}:{rid}", s.provider)
            sku_ids.append(sid)
            price = _fmt_price(int(_LIST_MICRO[i, j]))
            for spot in (False, True):
                if s.provider == "aws":
                    price_ids.append(f"{sid}.{'SPOT000001' if spot else 'JRTCKXETXF'}.6YS6EN2CT7")
                elif s.provider == "gcp":
                    price_ids.append(f"{sid}/{'spot' if spot else 'on-demand'}")
                else:
                    price_ids.append(_Rand(0, f"meter:{sid}:{spot}").guid())
                tmpl = s.spot_desc if spot and s.spot_desc else s.desc
                descs.append(tmpl.format(price=price, name=s.name, region=rname))
    n_usage_desc = len(descs)
    credit_desc = [("AWS Promotional Credit", "AWS Activate Credits"),
                   ("Sustained use discount", "Google for Startups Cloud Program credit"),
                   ("Azure sponsorship credit", "Microsoft for Startups credit")]
    adjust_desc = [("Refund: service credit for an availability SLA breach", "Billing adjustment: rounding"),
                   ("Refund: Compute Engine SLA financial credit", "Billing adjustment: rounding"),
                   ("Refund: Azure SLA service credit", "Billing adjustment: rounding")]
    for pair in credit_desc:
        descs.extend(pair)
    for pair in adjust_desc:
        descs.extend(pair)
    t["desc"] = _table(descs)
    t["desc_credit"] = n_usage_desc
    t["desc_adjust"] = n_usage_desc + 2 * len(credit_desc)
    t["sku_id"] = _table(sku_ids)
    t["sku_price_id"] = _table(price_ids)
    # Commitments.
    acts = plan.actives
    t["c_id"] = _table([a.c.id for a in acts])
    t["c_name"] = _table([a.c.name for a in acts])
    t["c_type"] = _table([a.c.type for a in acts])
    t["c_category"] = _table([a.c.category for a in acts])
    t["c_unit"] = _table(["USD" if a.c.category == "Spend" else "Hours" for a in acts])
    t["c_spend"] = np.array([a.c.category == "Spend" for a in acts] + [False])
    t["c_start"] = np.array([a.start_p for a in acts] + [0], dtype=np.int64)
    t["c_end"] = np.array([a.end_p for a in acts] + [0], dtype=np.int64)
    # Names and ids.
    teams = org.teams
    maxp = max(len(x.projects) for x in teams)
    tp = [f"{x.name}-{x.projects[j % len(x.projects)]}" for x in teams for j in range(maxp)]
    t["team_project"] = _table(tp)
    t["team_project_alnum"] = _table(["st" + s.replace("-", "")[:12] for s in tp])
    t["word"] = _table([s.word for s in _SKUS])
    rg = [f"rg-{x.name}-{x.projects[j % len(x.projects)]}-{e}" for x in teams for j in range(maxp) for e in ENVS]
    ws = [f"mlw-{x.name}-{x.projects[j % len(x.projects)]}" for x in teams for j in range(maxp)]
    _resource_id_tables(plan, rg, ws)
    # Tags: (provider, team, project, env, style, workload).
    tags = []
    for p in _PROVIDERS:
        for x in teams:
            for j in range(maxp):
                pj = x.projects[j % len(x.projects)]
                for e in ENVS:
                    for style in range(_N_STYLES):
                        for w in range(4):
                            tags.append(_tags(p.key, x.name, pj, e, style, w))
    t["tags"] = _table(tags)
    t["maxp"] = maxp


# ResourceId formats: (literal, variable) pairs, a final literal, and the tail ("hex" or "name").
_VAR_NONE, _VAR_REGION, _VAR_ACCT, _VAR_ZONE, _VAR_RG, _VAR_WS = range(6)
_RID_FORMATS: dict[tuple[str, str, str], tuple[tuple[tuple[str, int], ...], str, str]] = {
    ("aws", "instance", ""): ((("arn:aws:ec2:", _VAR_REGION), (":", _VAR_ACCT)), ":instance/i-0", "hex"),
    ("aws", "block", ""): ((("arn:aws:ec2:", _VAR_REGION), (":", _VAR_ACCT)), ":volume/vol-0", "hex"),
    ("aws", "object", ""): ((), "arn:aws:s3:::", "name"),
    ("aws", "ml", "training-job"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)), ":training-job/", "name"),
    ("aws", "ml", "endpoint"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)), ":endpoint/", "name"),
    ("aws", "ml", "notebook-instance"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)),
                                         ":notebook-instance/", "name"),
    ("aws", "k8s", ""): ((("arn:aws:eks:", _VAR_REGION), (":", _VAR_ACCT)), ":cluster/", "name"),
    ("gcp", "instance", ""): ((("//compute.googleapis.com/projects/", _VAR_ACCT), ("/zones/", _VAR_ZONE)),
                              "/instances/", "name"),
    ("gcp", "tpu", ""): ((("//tpu.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_ZONE)), "/nodes/",
                         "name"),
    ("gcp", "ml", "customJobs"): ((("//aiplatform.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                                  "/customJobs/", "name"),
    ("gcp", "ml", "endpoints"): ((("//aiplatform.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                                 "/endpoints/", "name"),
    ("gcp", "ml", "instances"): ((("//notebooks.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_ZONE)),
                                 "/instances/", "name"),
    ("gcp", "object", ""): ((), "//storage.googleapis.com/projects/_/buckets/", "name"),
    ("gcp", "k8s", ""): ((("//container.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                         "/clusters/", "name"),
    ("azure", "instance", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                                "/providers/microsoft.compute/virtualmachines/", "name"),
    ("azure", "ml", "computes"): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG),
                                   ("/providers/microsoft.machinelearningservices/workspaces/", _VAR_WS)),
                                  "/computes/", "name"),
    ("azure", "object", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                              "/providers/microsoft.storage/storageaccounts/", "name"),
    ("azure", "k8s", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                           "/providers/microsoft.containerservice/managedclusters/", "name"),
}
_RID_KEYS = list(_RID_FORMATS)


def _rid_format(s: _Sku) -> int:
    kind = "instance" if s.kind in ("gpu", "cpu", "egress") else s.kind
    if s.provider != "aws" and kind == "block":
        kind = "instance"
    return _RID_KEYS.index((s.provider, kind, s.path if s.kind == "ml" else ""))


_SKU_RID_FMT = np.array([_rid_format(s) for s in _SKUS])


def _resource_id_tables(plan: _Plan, rg: list[str], ws: list[str]) -> None:
    t = plan.tables
    lits: list[list[str]] = [[], [], [], []]
    var_types = np.zeros((len(_RID_KEYS), 3), dtype=np.int64)
    tails = np.zeros(len(_RID_KEYS), dtype=bool)  # True: hex tail
    for fi, key in enumerate(_RID_KEYS):
        pairs, last, tail = _RID_FORMATS[key]
        for j in range(3):
            lit, var = pairs[j] if j < len(pairs) else ("", _VAR_NONE)
            lits[j].append(lit)
            var_types[fi, j] = var
        lits[3].append(last)
        tails[fi] = tail == "hex"
    t["rid_lits"] = [_table(x) for x in lits]
    t["rid_vars"] = var_types
    t["rid_hex"] = tails
    # Variable pieces: one table, with offsets per variable type.
    pieces: list[str] = [""]
    offsets = {_VAR_NONE: 0}
    offsets[_VAR_REGION] = len(pieces)
    pieces += [r[0] for p in _PROVIDERS for r in p.regions]
    offsets[_VAR_ACCT] = len(pieces)
    pieces += [a.sub_account_id.lower() if a.provider == "azure" else a.sub_account_id for a in plan.org.accounts]
    offsets[_VAR_ZONE] = len(pieces)
    pieces += t["zone"].to_list()[:-1]
    offsets[_VAR_RG] = len(pieces)
    pieces += rg
    offsets[_VAR_WS] = len(pieces)
    pieces += ws
    t["rid_pieces"] = _table(pieces)
    t["rid_offsets"] = offsets
