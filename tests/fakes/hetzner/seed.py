"""Seed data for the fake Hetzner Cloud API: locations, datacenters, server types, images.

The values are modelled on the public catalogue (late 2026): the "current" cost-optimized
(cx23..cx53), regular (cpx12..cpx32), Arm (cax11, cax21) and dedicated (ccx13) types, plus two
retired types (cx22, cpx11) whose ``locations[].deprecation.unavailable_after`` is in the past.
``cpx32`` is listed in ``sin`` but marked ``available: false`` (sold out there).

Everything here is plain data; ``build_catalog()`` returns fresh, independent copies so a test
may mutate the catalogue of its own fake without affecting others.
"""

from __future__ import annotations

import copy
from typing import Any

LOCATIONS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "fsn1",
        "description": "Falkenstein DC Park 1",
        "country": "DE",
        "city": "Falkenstein",
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central",
    },
    {
        "id": 2,
        "name": "nbg1",
        "description": "Nuremberg DC Park 1",
        "country": "DE",
        "city": "Nuremberg",
        "latitude": 49.452102,
        "longitude": 11.076665,
        "network_zone": "eu-central",
    },
    {
        "id": 3,
        "name": "hel1",
        "description": "Helsinki DC Park 1",
        "country": "FI",
        "city": "Helsinki",
        "latitude": 60.169855,
        "longitude": 24.938379,
        "network_zone": "eu-central",
    },
    {
        "id": 4,
        "name": "ash",
        "description": "Ashburn, VA",
        "country": "US",
        "city": "Ashburn, VA",
        "latitude": 39.045821,
        "longitude": -77.487073,
        "network_zone": "us-east",
    },
    {
        "id": 5,
        "name": "hil",
        "description": "Hillsboro, OR",
        "country": "US",
        "city": "Hillsboro, OR",
        "latitude": 45.54222,
        "longitude": -122.95194,
        "network_zone": "us-west",
    },
    {
        "id": 6,
        "name": "sin",
        "description": "Singapore",
        "country": "SG",
        "city": "Singapore",
        "latitude": 1.283333,
        "longitude": 103.833333,
        "network_zone": "ap-southeast",
    },
]

# location name -> (datacenter id, datacenter name, description)
DATACENTERS = {
    "fsn1": (4, "fsn1-dc14", "Falkenstein 1 virtual DC 14"),
    "nbg1": (2, "nbg1-dc3", "Nuremberg 1 virtual DC 3"),
    "hel1": (3, "hel1-dc2", "Helsinki 1 virtual DC 2"),
    "ash": (5, "ash-dc1", "Ashburn virtual DC 1"),
    "hil": (6, "hil-dc1", "Hillsboro virtual DC 1"),
    "sin": (7, "sin-dc1", "Singapore virtual DC 1"),
}

EU = ("fsn1", "nbg1", "hel1")
ALL = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")

RETIRED = {"announced": "2025-10-16T06:00:00Z", "unavailable_after": "2026-01-01T00:00:00Z"}

# traffic included per month, bytes: 20 TB in the EU, 1 TB in the US, 0.5 TB in Singapore
_TRAFFIC = {
    "fsn1": 21990232555520,
    "nbg1": 21990232555520,
    "hel1": 21990232555520,
    "ash": 1099511627776,
    "hil": 1099511627776,
    "sin": 549755813888,
}
_TB_PRICE = {"fsn1": 1.0, "nbg1": 1.0, "hel1": 1.0, "ash": 1.0, "hil": 1.0, "sin": 7.4}

# name: (id, description, category, cores, memory GB, disk GB, cpu_type, architecture,
#        monthly net EUR, locations, retired, unavailable locations)
_TYPES: list[tuple] = [
    (114, "CX23", "Cost-Optimized", 2, 4.0, 40, "shared", "x86", 2.99, EU, False, ()),
    (115, "CX33", "Cost-Optimized", 4, 8.0, 80, "shared", "x86", 4.99, EU, False, ()),
    (116, "CX43", "Cost-Optimized", 8, 16.0, 160, "shared", "x86", 8.99, EU, False, ()),
    (117, "CX53", "Cost-Optimized", 16, 32.0, 320, "shared", "x86", 16.99, EU, False, ()),
    (108, "CPX12", "Regular Purpose", 1, 2.0, 40, "shared", "x86", 5.49, ALL, False, ()),
    (109, "CPX22", "Regular Purpose", 2, 4.0, 80, "shared", "x86", 7.99, ALL, False, ()),
    (110, "CPX32", "Regular Purpose", 4, 8.0, 160, "shared", "x86", 13.99, ALL, False, ("sin",)),
    (45, "CAX11", "Cost-Optimized", 2, 4.0, 40, "shared", "arm", 3.79, EU, False, ()),
    (93, "CAX21", "Cost-Optimized", 4, 8.0, 80, "shared", "arm", 6.49, EU, False, ()),
    (96, "CCX13", "General Purpose", 2, 8.0, 80, "dedicated", "x86", 12.49, ALL, False, ()),
    (104, "CX22", "Cost-Optimized", 2, 4.0, 40, "shared", "x86", 3.79, EU, True, ()),
    (22, "CPX11", "Regular Purpose", 2, 2.0, 40, "shared", "x86", 4.35, ALL, True, ()),
]

_IMAGES: list[tuple] = [
    # id, name, description, os_flavor, os_version, architecture, created
    (114690387, "debian-12", "Debian 12", "debian", "12", "x86", "2023-06-13T06:00:02Z"),
    (114690389, "debian-12", "Debian 12", "debian", "12", "arm", "2023-06-13T06:00:02Z"),
    (161547269, "ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", "x86", "2024-04-25T12:00:00Z"),
    (161547270, "ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", "arm", "2024-04-25T12:00:00Z"),
    (279032126, "debian-13", "Debian 13", "debian", "13", "x86", "2025-08-12T06:00:00Z"),
    (279032127, "debian-13", "Debian 13", "debian", "13", "arm", "2025-08-12T06:00:00Z"),
]


def _price(net: float) -> dict[str, str]:
    return {"net": f"{net:.10f}", "gross": f"{net * 1.19:.16f}"}


def _server_type(row: tuple, loc_by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (tid, desc, category, cores, memory, disk, cpu_type, arch, monthly, locs, retired, unavail) = row
    # US and Singapore are a bit more expensive, as in reality
    factor = {"ash": 1.2, "hil": 1.2, "sin": 1.3}
    locations = []
    prices = []
    for name in locs:
        loc = loc_by_name[name]
        entry: dict[str, Any] = {
            "id": loc["id"],
            "name": name,
            "deprecation": dict(RETIRED) if retired else None,
            # Not in the stored spec, but returned by the real API since 2026-04 and read by
            # hcloud-python >= 2.18 (ServerTypeLocation.available / .recommended).
            "available": not retired and name not in unavail,
            "recommended": not retired and name not in unavail and cpu_type == "shared",
        }
        locations.append(entry)
        m = monthly * factor.get(name, 1.0)
        prices.append(
            {
                "location": name,
                "price_hourly": _price(round(m / 730.0, 4)),
                "price_monthly": _price(m),
                "included_traffic": _TRAFFIC[name],
                "price_per_tb_traffic": _price(_TB_PRICE[name]),
            }
        )
    return {
        "id": tid,
        "name": desc.lower(),
        "description": desc,
        "category": category,
        "cores": cores,
        "memory": memory,
        "disk": disk,
        "cpu_type": cpu_type,
        "architecture": arch,
        "storage_type": "local",
        "deprecated": retired,
        "deprecation": dict(RETIRED) if retired else None,
        "locations": locations,
        "prices": prices,
    }


def build_catalog() -> dict[str, dict[int, dict[str, Any]]]:
    """Fresh copies of the read-only catalogue, keyed by kind then id."""
    locations = {loc["id"]: copy.deepcopy(loc) for loc in LOCATIONS}
    loc_by_name = {loc["name"]: loc for loc in locations.values()}
    server_types = {row[0]: _server_type(row, loc_by_name) for row in _TYPES}

    datacenters: dict[int, dict[str, Any]] = {}
    for name, (dc_id, dc_name, dc_desc) in DATACENTERS.items():
        supported = sorted(st["id"] for st in server_types.values() if any(l["name"] == name for l in st["locations"]))
        available = sorted(
            st["id"] for st in server_types.values() for l in st["locations"] if l["name"] == name and l["available"]
        )
        datacenters[dc_id] = {
            "id": dc_id,
            "name": dc_name,
            "description": dc_desc,
            "location": copy.deepcopy(loc_by_name[name]),
            "server_types": {
                "supported": supported,
                "available": available,
                "available_for_migration": list(available),
            },
        }

    images: dict[int, dict[str, Any]] = {}
    for iid, name, desc, flavor, version, arch, created in _IMAGES:
        images[iid] = {
            "id": iid,
            "type": "system",
            "status": "available",
            "name": name,
            "description": desc,
            "image_size": None,
            "disk_size": 5,
            "created": created,
            "created_from": None,
            "bound_to": None,
            "os_flavor": flavor,
            "os_version": version,
            "rapid_deploy": True,
            "protection": {"delete": False},
            "deprecated": None,
            "deleted": None,
            "labels": {},
            "architecture": arch,
        }
    return {
        "locations": locations,
        "datacenters": datacenters,
        "server_types": server_types,
        "images": images,
    }
