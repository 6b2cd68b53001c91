"""Explicit unit conversion into the canonical units (mL/h, mcg/day, mL, mcg/mL, mg, kg).

Every source unit is listed; anything else is refused, never assumed. Weight-
based dose rates need the weight from the same record: without it the dose is
unknown, not zero.
"""

from __future__ import annotations

from pumpguard.engine.errors import SchemaError

__all__ = ["UnitError", "convert", "normalise_unit"]


class UnitError(SchemaError):
    """A value in a unit we do not convert (or that needs a missing weight)."""


# Aliases → one spelling (UCUM-like). MDC REFIDs and numeric codes from the
# research note's table; UCUM spellings and common vendor spellings.
_ALIASES: dict[str, str] = {
    "265266": "mL/h",
    "mdc_dim_milli_l_per_hr": "mL/h",
    "ml/h": "mL/h",
    "ml/hr": "mL/h",
    "ml/hour": "mL/h",
    "ml/min": "mL/min",
    "l/h": "L/h",
    "263762": "mL",
    "mdc_dim_milli_l": "mL",
    "ml": "mL",
    "l": "L",
    "ul": "uL",
    "265619": "ug/kg/min",
    "mdc_dim_micro_g_per_kg_per_min": "ug/kg/min",
    "ug/kg/min": "ug/kg/min",
    "mcg/kg/min": "ug/kg/min",
    "ug/kg/h": "ug/kg/h",
    "mcg/kg/h": "ug/kg/h",
    "mcg/kg/hr": "ug/kg/h",
    "ug/kg/d": "ug/kg/d",
    "mcg/kg/day": "ug/kg/d",
    "ug/d": "ug/d",
    "ug/day": "ug/d",
    "mcg/d": "ug/d",
    "mcg/day": "ug/d",
    "ug/h": "ug/h",
    "mcg/h": "ug/h",
    "mcg/hr": "ug/h",
    "ug/min": "ug/min",
    "mcg/min": "ug/min",
    "265522": "mg/h",
    "mdc_dim_milli_g_per_hr": "mg/h",
    "mg/h": "mg/h",
    "mg/hr": "mg/h",
    "mg/d": "mg/d",
    "mg/day": "mg/d",
    "264306": "mg/mL",
    "mdc_dim_milli_g_per_ml": "mg/mL",
    "mg/ml": "mg/mL",
    "ug/ml": "ug/mL",
    "mcg/ml": "ug/mL",
    "ng/ml": "ng/mL",
    "mg/l": "mg/L",
    "263890": "mg",
    "mdc_dim_milli_g": "mg",
    "mg": "mg",
    "263891": "ug",
    "mdc_dim_micro_g": "ug",
    "ug": "ug",
    "mcg": "ug",
    "g": "g",
    "263875": "kg",
    "mdc_dim_kilo_g": "kg",
    "kg": "kg",
    "[lb_av]": "[lb_av]",
    "lb": "[lb_av]",
    "cm": "cm",
    "m2": "m2",
    "h": "h",
    "hr": "h",
    "d": "d",
    "day": "d",
    "min": "min",
}

# canonical unit → {source unit: factor}; a factor of None means "times weight".
_FACTORS: dict[str, dict[str, float]] = {
    "mL/h": {"mL/h": 1.0, "mL/min": 60.0, "L/h": 1000.0},
    "mL": {"mL": 1.0, "L": 1000.0, "uL": 0.001},
    "mcg/day": {"ug/d": 1.0, "ug/h": 24.0, "ug/min": 1440.0, "mg/h": 24000.0, "mg/d": 1000.0},
    "mcg/mL": {"ug/mL": 1.0, "mg/mL": 1000.0, "ng/mL": 0.001, "mg/L": 1.0},
    "mg": {"mg": 1.0, "ug": 0.001, "g": 1000.0},
    "kg": {"kg": 1.0, "[lb_av]": 0.45359237},
    "cm": {"cm": 1.0},
    "m2": {"m2": 1.0},
    "h": {"h": 1.0, "min": 1 / 60, "d": 24.0},
}
_PER_WEIGHT: dict[str, float] = {"ug/kg/min": 1440.0, "ug/kg/h": 24.0, "ug/kg/d": 1.0}


def normalise_unit(*candidates: str) -> str | None:
    """The first candidate spelling we know (code, REFID or UCUM), or None."""
    for c in candidates:
        if c:
            hit = _ALIASES.get(c.strip().lower())
            if hit is not None:
                return hit
    return None


def convert(value: float, unit: str, target: str, weight_kg: float | None = None) -> float:
    """``value`` in ``unit`` expressed in ``target``; raises UnitError when it cannot be."""
    table = _FACTORS[target]
    factor = table.get(unit)
    if factor is not None:
        # Rounded so 0.375 mcg/h reads as 9 mcg/day, not 8.999999999999998.
        return value if factor == 1.0 else round(value * factor, 9)
    if target == "mcg/day" and unit in _PER_WEIGHT:
        if weight_kg is None:
            msg = f"dose in {unit} needs the patient's weight, which the record does not give"
            raise UnitError(msg)
        return round(value * weight_kg * _PER_WEIGHT[unit], 9)
    msg = f"unit {unit!r} cannot be converted to {target}"
    raise UnitError(msg)
