"""Codes, display names and tag sets in each provider's style."""

from __future__ import annotations

import hashlib
import json

_UPPER_WORDS = {"ml", "nlp", "llm", "rl", "etl", "ab", "gpu", "genai", "bio"}
_N_STYLES = 6  # tag styles, see _tags


def _code(text: str, provider: str) -> str:
    """A SKU-like identifier in the provider's style, stable for ``text`` (independent of the seed)."""
    d = hashlib.blake2b(text.encode(), digest_size=16).digest()
    if provider == "aws":
        alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
        return "".join(alphabet[b % len(alphabet)] for b in d)
    if provider == "gcp":
        h = d.hex().upper()
        return f"{h[:4]}-{h[4:8]}-{h[8:12]}"
    h = d.hex().upper()
    return f"DZH{h[:9]}/{h[9:13]}"


def _title(name: str) -> str:
    return "-".join(w.upper() if w in _UPPER_WORDS else w.capitalize() for w in name.split("-"))


def _typo(name: str) -> str:
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    i = letters[len(letters) // 2]
    return name[:i] + name[i + 1:]


def _tags(provider: str, team: str, project: str, env: str, style: int, workload: int) -> str:
    """One tag set. Styles: 0 clean, 1 clean + launcher tags, 2 key/value case drift, 3 underscores,
    4 unknown team, 5 no team key. GCP labels are lowercase only, so case drift becomes underscores."""
    if provider == "gcp" and style == 2:
        style = 3
    tags: dict[str, object]
    if style in (0, 1):
        tags = {"team": team, "project": project, "env": env}
        if style == 1:
            tags["finops-team"] = team
            tags["finops-workload"] = f"{project}-{workload:03d}"
    elif style == 2:
        tags = {"Team": _title(team), "Project": project, "Environment": env.capitalize()}
    elif style == 3:
        tags = {"team": team.replace("-", "_"), "project": project.replace("-", "_"), "env": env}
    elif style == 4:
        unknown = (_typo(team), "shared", "tbd", "growth")[workload % 4]
        tags = {"team": unknown, "project": project, "env": env}
    else:
        tags = {"project": project, "env": env}
    return json.dumps(tags, separators=(",", ":"), sort_keys=True)
