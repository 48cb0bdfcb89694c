"""Hardware cost of a combinational design from Yosys 0.23 (generic gates, CMOS, iCE40, Xilinx 7-series).

* ``gates``: cells after ``synth -flatten`` mapped by ABC to the 2-input gate set
  AND NAND OR NOR XOR XNOR ANDNOT ORNOT plus MUX and NOT; ``depth`` is the longest topological path in
  that netlist (``ltp -noff``), in gates.
* ``transistors``: Yosys' CMOS transistor estimate (``stat -tech cmos``) after mapping to NAND/NOR/NOT.
* ``ice40_lut4`` / ``ice40_carry``: ``synth_ice40`` SB_LUT4 and SB_CARRY cells.
* ``xilinx_lut`` / ``xilinx_carry``: ``synth_xilinx -family xc7 -nodsp`` LUT1..LUT6 and CARRY4 cells (DSP
  inference is off so that the multiplier's own logic is counted).
Results are cached by the design's content and the Yosys version.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from pyapprox.cache import cache_dir, content_key
from pyapprox.errors import PyapproxError
from pyapprox import io as pio
from pyapprox.sim import tools
from pyapprox.sim.hdl import HdlDesign, summarise_yosys_error

COST_KEYS = ("gates", "depth", "transistors", "ice40_lut4", "ice40_carry", "xilinx_lut", "xilinx_carry")
COST_VERSION = 1


def _yosys(design: HdlDesign, flow: list[str], work: Path, tag: str) -> str:
    script = work / f"{tag}.ys"
    script.write_text("\n".join(design.yosys_read_commands() + flow) + "\n")
    res = subprocess.run([tools.yosys().path, "-q", "-s", str(script)], capture_output=True, text=True,
                         timeout=1800, cwd=work)
    log = res.stdout + res.stderr
    if res.returncode != 0:
        raise PyapproxError(f"Yosys ({tag}) failed on {design.where()}: {summarise_yosys_error(log, design.top)}",
                            log[-4000:])
    return log


def _cells(stat_text: str) -> tuple[int, dict[str, int]]:
    total = re.search(r"Number of cells:\s+(\d+)", stat_text)
    types = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", stat_text, re.M)}
    return (int(total.group(1)) if total else 0), types


def hardware_cost(design: HdlDesign, use_cache: bool = True) -> dict[str, int]:
    """Synthesize ``design`` four ways and return the cost figures named in :data:`COST_KEYS`."""
    yosys = tools.yosys()
    key = content_key({"v": COST_VERSION, "sources": sorted(design.source_hashes().values()), "top": design.top,
                       "params": design.params, "defines": design.defines, "yosys": yosys.version})
    cache_file = cache_dir("hw") / f"{key}.json"
    if use_cache and cache_file.exists():
        try:
            return json.loads(cache_file.read_text())
        except json.JSONDecodeError:
            pass
    with tempfile.TemporaryDirectory(prefix="pyapprox-hw-") as tmp:
        work = Path(tmp)
        _yosys(design, ["synth -flatten -top " + design.top,
                        "abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX", "opt_clean",
                        "tee -q -o gates.txt stat", "tee -q -o ltp.txt ltp -noff"], work, "gates")
        gates, _ = _cells((work / "gates.txt").read_text())
        m = re.search(r"length=(\d+)", (work / "ltp.txt").read_text())
        depth = int(m.group(1)) if m else 0
        _yosys(design, ["synth -flatten -top " + design.top, "abc -g cmos2", "opt_clean",
                        "tee -q -o cmos.txt stat -tech cmos"], work, "cmos")
        m = re.search(r"Estimated number of transistors:\s+(\d+)", (work / "cmos.txt").read_text())
        transistors = int(m.group(1)) if m else 0
        _yosys(design, ["synth_ice40 -top " + design.top, "tee -q -o ice40.txt stat"], work, "ice40")
        _, ice = _cells((work / "ice40.txt").read_text())
        _yosys(design, ["synth_xilinx -family xc7 -nodsp -top " + design.top, "tee -q -o xilinx.txt stat"],
               work, "xilinx")
        _, xil = _cells((work / "xilinx.txt").read_text())
    cost = {
        "gates": gates,
        "depth": depth,
        "transistors": transistors,
        "ice40_lut4": ice.get("SB_LUT4", 0),
        "ice40_carry": ice.get("SB_CARRY", 0),
        "xilinx_lut": sum(v for k, v in xil.items() if re.fullmatch(r"LUT\d", k)),
        "xilinx_carry": sum(v for k, v in xil.items() if k.startswith("CARRY")),
    }
    if use_cache:
        pio.write_json(cache_file, cost)
    return cost
