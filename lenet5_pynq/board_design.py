"""The block design of the overlay, described once: IP instance names, VLNVs, the address map,
the AXI DMA configuration, the accelerator's register names in the overlay metadata and the
Zynq PS settings of every board.

Three readers, no second copy:

* the Vivado flow: ``python -m lenet5_pynq.board_design tcl --board pynq-z2`` writes the tcl
  variables that ``vivado/tcl/block_design.tcl`` builds the block design from (``vivado/Makefile``);
* the simulated board (``lenet5_pynq.simboard``) places its register models at these addresses
  and renders the ``.hwh`` a Vivado build of this description would carry
  (``lenet5_pynq.simboard.hwh``), so the real ``pynq.Overlay`` parses it;
* the driver (``lenet5_pynq.overlay``) finds the IP by these instance names and checks the
  parameters it reads from the overlay's metadata against ``DMA`` below.

    python -m lenet5_pynq.board_design tcl --board BOARD [--out FILE]
    python -m lenet5_pynq.board_design boards
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, field

from . import hls_config, hls_stream

OVERLAY_NAME = "lenet5"  # lenet5.bit / lenet5.hwh, the pynq.overlays name
BD_NAME = "lenet5_bd"  # the block design (not "lenet5": its top module would clash with the HLS IP's)

# ---------------------------------------------------------------------------- instance names
PS = "ps"  # the Zynq processing system
DMA_NAME = "axi_dma"  # AXI DMA, simple mode: MM2S feeds the accelerator, S2MM takes its results
ACCEL_NAME = hls_config.TOP  # the LeNet-5 HLS IP
RESET_NAME = "rst_fabric"  # proc_sys_reset of the fabric clock domain
ACCEL_RESET_AND = "accel_reset_and"  # util_vector_logic: accelerator reset = fabric reset AND DMA reset
CTRL_INTERCONNECT = "ctrl_interconnect"  # PS master -> AXI4-Lite of the DMA and the accelerator
MEM_INTERCONNECT = "mem_interconnect"  # DMA masters -> PS high-performance port

# The accelerator's ports as Vitis HLS names them for lenet5(in, out, n, mode): `in`/`out` are
# Verilog keywords, so HLS appends "_r".
ACCEL_STREAM_IN = "in_r"
ACCEL_STREAM_OUT = "out_r"
ACCEL_CONTROL = "s_axi_control"
ACCEL_CONTROL_BLOCK = "Reg"
# The names of the accelerator's registers (keys of `regmap.REGISTERS`) in the overlay
# metadata, as Vitis HLS names them in the IP's register map.
ACCEL_REGISTER_NAMES = {"CTRL": "CTRL", "GIE": "GIER", "IER": "IP_IER", "ISR": "IP_ISR", "N": "n", "MODE": "mode"}

VLNV = {
    "axi_dma": "xilinx.com:ip:axi_dma:7.1",
    "proc_sys_reset": "xilinx.com:ip:proc_sys_reset:5.0",
    "util_vector_logic": "xilinx.com:ip:util_vector_logic:2.0",
    "smartconnect": "xilinx.com:ip:smartconnect:1.0",
    "accel": hls_config.VLNV,
}

FABRIC_CLOCK_MHZ = hls_config.CLOCK_MHZ

# ------------------------------------------------------------------------------- the AXI DMA
# Configuration parameters of axi_dma 7.1 as the IP names them (PG021, "Customizing and Generating
# the Core"); the block design sets exactly these and the .hwh carries them back to the driver.
BEAT_BITS = hls_stream.BEAT_BYTES * 8
DMA_LENGTH_WIDTH = 26  # the 14-bit default caps one transfer at 16 KB; 26 bits allow 64 MB - 1
DMA = {
    "c_include_sg": 0,  # simple (register direct) mode
    "c_sg_length_width": DMA_LENGTH_WIDTH,
    "c_sg_include_stscntrl_strm": 0,
    "c_include_mm2s": 1,
    "c_include_s2mm": 1,
    "c_m_axi_mm2s_data_width": BEAT_BITS,
    "c_m_axis_mm2s_tdata_width": BEAT_BITS,
    "c_m_axi_s2mm_data_width": BEAT_BITS,
    "c_s_axis_s2mm_tdata_width": BEAT_BITS,
    "c_mm2s_burst_size": 64,
    "c_s2mm_burst_size": 64,
    "c_include_mm2s_dre": 0,  # buffers come from pynq.allocate, page aligned
    "c_include_s2mm_dre": 0,
    "c_micro_dma": 0,
}


@dataclass(frozen=True)
class Board:
    """One target board: its part and board preset, its PS, and where the IP sits in the PS's
    master window."""

    name: str  # directory name under lenet5_pynq/bitstreams/
    pynq_names: tuple[str, ...]  # $BOARD on the PYNQ image
    part: str
    board_part: str
    board_connections: str  # board_part connections (KV260 SOM on its carrier), "" if none
    family: str  # "zynq" or "zynq_us+"
    ps_vlnv: str
    ps_modtype: str  # MODTYPE of the PS in the .hwh (pynq's parser keys on it)
    ps_master: str  # PS AXI master that reaches the AXI4-Lite slaves
    ps_slave: str  # PS high-performance slave port the DMA writes and reads DDR through
    ps_clock_pin: str
    ps_reset_pin: str
    ps_config: dict[str, object]  # PS settings on top of the board preset
    dma_address_width: int  # c_addr_width of the DMA (> 32 adds the *_MSB address registers)
    addresses: dict[str, tuple[int, int]]  # instance -> (base address, range)
    extra_dma: dict[str, object] = field(default_factory=dict)

    @property
    def dma_params(self) -> dict[str, object]:
        return {**DMA, "c_addr_width": self.dma_address_width, **self.extra_dma}


_KB64 = 0x1_0000

# The Zynq UltraScale+ boards share the PS settings, the DMA's address width and the address map.
_ZYNQ_US_PLUS = dict(
    family="zynq_us+",
    ps_vlnv="xilinx.com:ip:zynq_ultra_ps_e:3.5",
    ps_modtype="zynq_ultra_ps_e",
    ps_master="M_AXI_HPM0_FPD",
    ps_slave="S_AXI_HP0_FPD",
    ps_clock_pin="pl_clk0",
    ps_reset_pin="pl_resetn0",
    ps_config={
        "PSU__USE__M_AXI_GP0": 1,
        "PSU__USE__M_AXI_GP1": 0,
        "PSU__USE__M_AXI_GP2": 0,
        "PSU__MAXIGP0__DATA_WIDTH": 32,
        "PSU__USE__S_AXI_GP2": 1,
        "PSU__SAXIGP2__DATA_WIDTH": 64,
        "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": FABRIC_CLOCK_MHZ,
    },
    dma_address_width=64,
    addresses={DMA_NAME: (0xA000_0000, _KB64), ACCEL_NAME: (0xA001_0000, _KB64)},
)

BOARDS: dict[str, Board] = {
    "pynq-z2": Board(
        name="pynq-z2",
        pynq_names=("Pynq-Z2",),
        part=hls_config.PARTS["pynq-z2"].part,
        board_part="tul.com.tw:pynq-z2:part0:1.0",
        board_connections="",
        family="zynq",
        ps_vlnv="xilinx.com:ip:processing_system7:5.5",
        ps_modtype="processing_system7",
        ps_master="M_AXI_GP0",
        ps_slave="S_AXI_HP0",
        ps_clock_pin="FCLK_CLK0",
        ps_reset_pin="FCLK_RESET0_N",
        ps_config={
            "PCW_USE_M_AXI_GP0": 1,
            "PCW_USE_S_AXI_HP0": 1,
            "PCW_S_AXI_HP0_DATA_WIDTH": 64,
            "PCW_FPGA0_PERIPHERAL_FREQMHZ": FABRIC_CLOCK_MHZ,
        },
        dma_address_width=32,
        addresses={DMA_NAME: (0x4040_0000, _KB64), ACCEL_NAME: (0x43C0_0000, _KB64)},
    ),
    "zcu104": Board(
        name="zcu104",
        pynq_names=("ZCU104",),
        part=hls_config.PARTS["zcu104"].part,
        board_part="xilinx.com:zcu104:part0:1.1",
        board_connections="",
        **_ZYNQ_US_PLUS,
    ),
    "kv260": Board(
        name="kv260",
        pynq_names=("KV260", "K26"),
        part=hls_config.PARTS["kv260"].part,
        board_part="xilinx.com:kv260_som:part0:1.4",
        board_connections="som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3",
        **_ZYNQ_US_PLUS,
    ),
}
DEFAULT_BOARD = "pynq-z2"


def board(name: str) -> Board:
    """The board called `name` (directory name or the PYNQ image's $BOARD, any case)."""
    key = name.strip().lower()
    for b in BOARDS.values():
        if key == b.name or key in (p.lower() for p in b.pynq_names) or key == b.name.replace("-", ""):
            return b
    raise ValueError(f"unknown board {name!r}; known: {', '.join(BOARDS)}")


def check(b: Board) -> None:
    """The address map is consistent: aligned, power-of-two ranges that do not overlap."""
    spans = []
    for inst, (base, size) in b.addresses.items():
        if size & (size - 1) or base % size:
            raise ValueError(f"{b.name}: {inst} at 0x{base:x} size 0x{size:x} is not an aligned power of two")
        spans.append((base, base + size, inst))
    spans.sort()
    for (_, end, a), (start, _, c) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"{b.name}: {a} and {c} overlap")
    if set(b.addresses) != {DMA_NAME, ACCEL_NAME}:
        raise ValueError(f"{b.name}: the address map must place exactly {DMA_NAME} and {ACCEL_NAME}")


# ------------------------------------------------------------------------------------ tcl
def _tcl_value(v) -> str:
    return "{" + str(v) + "}"


def _tcl_dict(d: dict) -> str:
    return " ".join(f"{k} {_tcl_value(v)}" for k, v in d.items())


def render_tcl(name: str) -> str:
    """tcl variables for vivado/tcl/block_design.tcl (generated; never edited by hand)."""
    b = board(name)
    check(b)
    lines = [
        f"# Generated by `python -m lenet5_pynq.board_design tcl --board {b.name}` from",
        "# lenet5_pynq/board_design.py, the one description of the block design. Do not edit.",
        f"set overlay_name {OVERLAY_NAME}",
        f"set bd_name {BD_NAME}",
        f"set board_name {b.name}",
        f"set part {b.part}",
        f"set board_part {b.board_part}",
        f"set board_connections {_tcl_value(b.board_connections)}",
        f"set ps_family {b.family}",
        f"set ps_name {PS}",
        f"set ps_vlnv {b.ps_vlnv}",
        f"set ps_master {b.ps_master}",
        f"set ps_slave {b.ps_slave}",
        f"set ps_clock_pin {b.ps_clock_pin}",
        f"set ps_reset_pin {b.ps_reset_pin}",
        f"set ps_config [list {_tcl_dict(b.ps_config)}]",
        f"set fabric_clock_mhz {FABRIC_CLOCK_MHZ}",
        f"set dma_name {DMA_NAME}",
        f"set dma_vlnv {VLNV['axi_dma']}",
        f"set dma_config [list {_tcl_dict(b.dma_params)}]",
        f"set accel_name {ACCEL_NAME}",
        f"set accel_vlnv {VLNV['accel']}",
        f"set accel_stream_in {ACCEL_STREAM_IN}",
        f"set accel_stream_out {ACCEL_STREAM_OUT}",
        f"set accel_control {ACCEL_CONTROL}",
        f"set accel_control_block {ACCEL_CONTROL_BLOCK}",
        f"set reset_name {RESET_NAME}",
        f"set reset_vlnv {VLNV['proc_sys_reset']}",
        f"set accel_reset_and {ACCEL_RESET_AND}",
        f"set and_vlnv {VLNV['util_vector_logic']}",
        f"set ctrl_interconnect {CTRL_INTERCONNECT}",
        f"set mem_interconnect {MEM_INTERCONNECT}",
        f"set interconnect_vlnv {VLNV['smartconnect']}",
        "# instance -> {offset range}",
        "set address_map [dict create \\",
    ]
    for inst, (base, size) in b.addresses.items():
        lines.append(f"    {inst} {{0x{base:08X} 0x{size:X}}} \\")
    lines.append("]")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.board_design", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tcl")
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"one of {', '.join(BOARDS)}")
    p.add_argument("--out", help="write here instead of stdout")
    sub.add_parser("boards", help="list the boards")
    args = parser.parse_args(argv)
    if args.command == "boards":
        for b in BOARDS.values():
            print(f"{b.name}\t{b.part}\t{b.board_part}")
        return 0
    try:
        text = render_tcl(args.board)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
