"""Region codes to names: Indonesia's 514 kabupaten/kota and 38 provinces.

The table ships as package data (``center/data/regencies.csv``, from the npm
package ``idn-area-data`` 4.0.1, ODbL; see ``center/data/README.md``). A code
the table does not know is kept and shown as it is: a gateway configured with
a new or mistyped code still counts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Region:
    code: str  # kode wilayah, "64.74"
    name: str  # "Kota Bontang"
    province_code: str  # "64"
    province: str  # "Kalimantan Timur"


def _rows(name: str) -> list[dict[str, str]]:
    text = (resources.files("center") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@cache
def regions() -> dict[str, Region]:
    """Every kabupaten/kota by code, in the table's order."""
    provinces = {row["code"]: row["name"] for row in _rows("provinces.csv")}
    return {
        row["code"]: Region(
            code=row["code"],
            name=row["name"],
            province_code=row["province_code"],
            province=provinces.get(row["province_code"], ""),
        )
        for row in _rows("regencies.csv")
    }


def region_name(code: str) -> str | None:
    """The kabupaten/kota name of a code, or None when the table does not know it."""
    found = regions().get(code)
    return found.name if found else None
