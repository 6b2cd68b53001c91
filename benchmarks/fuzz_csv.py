"""Fuzz the CSV source through the corpus's mapping (see fuzz_common.py).

.venv/bin/python benchmarks/fuzz_csv.py --seconds 180
"""

from __future__ import annotations

import atheris
from fuzz_common import BAD, check, run, seeds_from

with atheris.instrument_imports():
    from pumpguard.adapters.config import AdapterConfig
    from pumpguard.adapters.csv_source import CsvMapping, CsvSource

CONFIG = AdapterConfig(time_zone="Europe/Berlin")
# Loaded once: YAML parsing per input would be most of the time and fuzz nothing of ours.
MAPPINGS = [
    CsvMapping.from_yaml(BAD / "csv" / name) for name in ("mapping.yaml", "mapping_latin1.yaml")
]
VALID = (
    b"Record ID,Event Time,Event,MRN,Pump Serial,Container,Rate,Rate Unit,Volume,Stop Reason\n"
    b"c1,2026-03-02T09:00:00+01:00,Flush,C1,PC,,,,5,\n"
    b"c2,2026-03-02T10:00:00,Rate Change,C1,PC,,10,mL/h,,\n"
    b'c3,2026-03-02T11:00:00Z,Infusion Stopped,C1,PC,"B\n1",,,,User\n'
)


def one_input(data: bytes) -> None:
    check(CsvSource(data=data, config=CONFIG, mappings=MAPPINGS, label="fuzz.csv"))


if __name__ == "__main__":
    run(one_input, [VALID, *seeds_from("csv", ["*.csv"])])
