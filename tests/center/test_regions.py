"""The shipped kabupaten/kota table (center/data, from idn-area-data 4.0.1, ODbL)."""

from __future__ import annotations

import re

from center.regions import region_name, regions


def test_the_table_has_indonesias_514_kabupaten_kota_with_valid_codes() -> None:
    table = regions()
    assert len(table) == 514
    assert all(re.fullmatch(r"\d{2}\.\d{2}", code) for code in table)
    kinds = {region.name.split(" ")[0] for region in table.values()}
    assert kinds == {"Kabupaten", "Kota"}
    assert len({region.province_code for region in table.values()}) == 38
    assert all(region.province for region in table.values())


def test_known_codes_and_an_unknown_one() -> None:
    assert region_name("64.74") == "Kota Bontang"  # the contract's example
    assert region_name("31.71") == "Kota Administrasi Jakarta Pusat"
    assert regions()["64.74"].province == "Kalimantan Timur"
    assert region_name("99.99") is None
