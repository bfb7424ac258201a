"""Which devices a shipment targets, as SQL over ``device d``.

Both the rollout job (new offers) and the delivery (devices still waiting) ask it, so it lives
below both of them.
"""

from __future__ import annotations

from typing import Any

_SUBTREE = (
    "(WITH RECURSIVE sub(id) AS (SELECT {arg}::bigint UNION ALL SELECT o.id FROM organization o "
    "JOIN sub ON o.parent_id = sub.id) SELECT id FROM sub)"
)


def target_condition(shipment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """SQL over ``device d`` selecting the shipment's targets, and its parameters."""
    kind = shipment["target_kind"]
    params = {
        "sid": shipment["id"],
        "owner": shipment["org_id"],
        "tpl": shipment["target_template"],
        "org": shipment["target_org"],
        "tag": shipment["target_tag"],
    }
    where = {
        "template": "d.template_id = %(tpl)s",
        "devices": "d.id IN (SELECT device_id FROM ota_device WHERE shipment_id = %(sid)s)",
        "org": "d.org_id IN " + _SUBTREE.format(arg="%(org)s"),
        "tag": "EXISTS (SELECT 1 FROM device_tag t WHERE t.device_id = d.id AND t.tag = %(tag)s)",
    }[kind]
    return f"{where} AND d.org_id IN {_SUBTREE.format(arg='%(owner)s')}", params
