"""The block design of the overlay, described once: IP instance names, VLNVs, the address map,
the AXI DMA configuration and the Zynq PS settings of every board.

Three readers, no second copy:

* the Vivado flow: ``python -m lenet5_pynq.board_design tcl --board pynq-z2`` writes the tcl
  variables that ``vivado/tcl/block_design.tcl`` builds the block design from (``vivado/Makefile``);
* the simulated board (``lenet5_pynq.simboard``) renders the ``.hwh`` a Vivado build of this
  description would carry (``render_hwh``), so the real ``pynq.Overlay`` parses it;
* the driver (``lenet5_pynq.overlay``) finds the IP by these instance names and checks the
  parameters it reads from the overlay's metadata against ``DMA`` below.

    python -m lenet5_pynq.board_design tcl --board BOARD [--out FILE]
    python -m lenet5_pynq.board_design hwh --board BOARD [--out FILE]   # the simulated board's .hwh
    python -m lenet5_pynq.board_design boards
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

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
    hls_part: str = ""  # the part Vitis HLS targets (hls_config.PARTS)
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
        hls_part=hls_config.PARTS["pynq-z2"].part,
    ),
    "zcu104": Board(
        name="zcu104",
        pynq_names=("ZCU104",),
        part=hls_config.PARTS["zcu104"].part,
        board_part="xilinx.com:zcu104:part0:1.1",
        board_connections="",
        **_ZYNQ_US_PLUS,
        hls_part=hls_config.PARTS["zcu104"].part,
    ),
    "kv260": Board(
        name="kv260",
        pynq_names=("KV260", "K26"),
        part=hls_config.PARTS["kv260"].part,
        board_part="xilinx.com:kv260_som:part0:1.4",
        board_connections="som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3",
        **_ZYNQ_US_PLUS,
        hls_part=hls_config.PARTS["kv260"].part,
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
    for (_, end, a), (start, _, c) in zip(spans, spans[1:]):
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


# ------------------------------------------------------------------------------------ hwh
def _ps_parameters(b: Board) -> dict[str, object]:
    """PS parameters as a Vivado build of this board would record them in the .hwh: the ones the
    design sets, plus the fabric clock settings pynq's .hwh parser reads."""
    params: dict[str, object] = dict(b.ps_config)
    if b.family == "zynq":
        for i in range(4):
            params[f"PCW_FPGA_FCLK{i}_ENABLE"] = int(i == 0)
            # IO PLL 1000 MHz / (10 * 1) = 100 MHz
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = 10 if i == 0 else 1
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = 1
    else:
        for i in range(4):
            params[f"PSU__FPGA_PL{i}_ENABLE"] = int(i == 0)
            # IO PLL 1500 MHz / (15 * 1) = 100 MHz
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0"] = 15 if i == 0 else 4
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1"] = 1
    return params


def _parameters_xml(params: dict[str, object], indent: str) -> str:
    items = "".join(f"{indent}  <PARAMETER NAME={quoteattr(k)} VALUE={quoteattr(str(v))}/>\n" for k, v in params.items())
    return f"{indent}<PARAMETERS>\n{items}{indent}</PARAMETERS>\n"


ACCEL_REGISTER_NAMES = {"CTRL": "CTRL", "GIE": "GIER", "IER": "IP_IER", "ISR": "IP_ISR", "N": "n", "MODE": "mode"}
_ACCEL_REGISTER_FIELDS = {
    "CTRL": [("AP_START", 0, 1, "read-write"), ("AP_DONE", 1, 1, "read-only"), ("AP_IDLE", 2, 1, "read-only"),
             ("AP_READY", 3, 1, "read-only"), ("AUTO_RESTART", 7, 1, "read-write")],
    "GIE": [("Enable", 0, 1, "read-write")],
    "IER": [("CHAN0_INT_EN", 0, 1, "read-write"), ("CHAN1_INT_EN", 1, 1, "read-write")],
    "ISR": [("CHAN0_INT_ST", 0, 1, "read-write"), ("CHAN1_INT_ST", 1, 1, "read-write")],
    "N": [("n", 0, 32, "read-write")],
    "MODE": [("mode", 0, 32, "read-write")],
}


def _registers_xml(indent: str) -> str:
    out = [f"{indent}<REGISTERS>\n"]
    for key, offset in hls_stream.REGISTERS.items():
        name = ACCEL_REGISTER_NAMES[key]
        access = "read-write"
        out.append(f"{indent}  <REGISTER NAME={quoteattr(name)}>\n")
        for pname, pval in (("DESCRIPTION", f"{name} register"), ("ADDRESS_OFFSET", str(offset)), ("SIZE", "32"), ("ACCESS", access)):
            out.append(f"{indent}    <PROPERTY NAME={quoteattr(pname)} VALUE={quoteattr(pval)}/>\n")
        out.append(f"{indent}    <FIELDS>\n")
        for fname, bit, width, faccess in _ACCEL_REGISTER_FIELDS[key]:
            out.append(f"{indent}      <FIELD NAME={quoteattr(fname)}>\n")
            for pname, pval in (("DESCRIPTION", fname), ("ACCESS", faccess), ("BIT_OFFSET", str(bit)), ("BIT_WIDTH", str(width))):
                out.append(f"{indent}        <PROPERTY NAME={quoteattr(pname)} VALUE={quoteattr(pval)}/>\n")
            out.append(f"{indent}      </FIELD>\n")
        out.append(f"{indent}    </FIELDS>\n{indent}  </REGISTER>\n")
    out.append(f"{indent}</REGISTERS>\n")
    return "".join(out)


def _memrange(b: Board, inst: str, slave: str, block: str) -> str:
    base, size = b.addresses[inst]
    return (
        f'        <MEMRANGE ADDRESSBLOCK="{block}" BASENAME="C_BASEADDR" BASEVALUE="0x{base:08X}" HIGHNAME="C_HIGHADDR" '
        f'HIGHVALUE="0x{base + size - 1:08X}" INSTANCE="{inst}" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" '
        f'MASTERBUSINTERFACE="{b.ps_master}" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="{slave}"/>\n'
    )


def render_hwh(name: str) -> str:
    """The hardware handoff a Vivado build of this description carries, reduced to what pynq's
    .hwh parser and the driver read: modules with VLNV and parameters, the PS's memory map, the
    accelerator's register map and the clock/reset nets."""
    b = board(name)
    check(b)
    device = b.part.split("-")[0]
    clk, rstn = f"{PS}_{b.ps_clock_pin}", f"{RESET_NAME}_peripheral_aresetn"
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
        f'<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="simulated" VIVADOVERSION="simulated board ({__name__})">\n'
        f'  <SYSTEMINFO ARCH="{b.family}" BOARD="{b.board_part}" DEVICE="{device}" NAME="{OVERLAY_NAME}" PACKAGE="" SPEEDGRADE=""/>\n'
        "  <EXTERNALPORTS/>\n"
        "  <MODULES>\n"
        f'    <MODULE FULLNAME="/{PS}" INSTANCE="{PS}" MODTYPE="{b.ps_modtype}" VLNV="{b.ps_vlnv}">\n'
        + _parameters_xml(_ps_parameters(b), "      ")
        + "      <MEMORYMAP>\n"
        + _memrange(b, DMA_NAME, "S_AXI_LITE", "Reg")
        + _memrange(b, ACCEL_NAME, ACCEL_CONTROL, ACCEL_CONTROL_BLOCK)
        + "      </MEMORYMAP>\n"
        "      <PORTS>\n"
        f'        <PORT DIR="O" NAME="{b.ps_clock_pin}" SIGIS="clk" SIGNAME="{clk}"/>\n'
        "      </PORTS>\n"
        "    </MODULE>\n"
        f'    <MODULE FULLNAME="/{DMA_NAME}" INSTANCE="{DMA_NAME}" MODTYPE="axi_dma" VLNV="{VLNV["axi_dma"]}">\n'
        + _parameters_xml({**{k.upper(): v for k, v in b.dma_params.items()}, **b.dma_params,
                           "C_BASEADDR": f"0x{b.addresses[DMA_NAME][0]:08X}",
                           "C_HIGHADDR": f"0x{sum(b.addresses[DMA_NAME]) - 1:08X}"}, "      ")
        + "      <PORTS>\n"
        f'        <PORT DIR="I" NAME="s_axi_lite_aclk" SIGIS="clk" SIGNAME="{clk}"/>\n'
        f'        <PORT DIR="I" NAME="axi_resetn" SIGIS="rst" SIGNAME="{rstn}"/>\n'
        '        <PORT DIR="O" NAME="s2mm_prmry_reset_out_n" SIGIS="rst" SIGNAME="axi_dma_s2mm_prmry_reset_out_n"/>\n'
        "      </PORTS>\n"
        "    </MODULE>\n"
        f'    <MODULE FULLNAME="/{ACCEL_NAME}" INSTANCE="{ACCEL_NAME}" MODTYPE="{ACCEL_NAME}" VLNV="{VLNV["accel"]}">\n'
        + _parameters_xml({"C_S_AXI_CONTROL_ADDR_WIDTH": 5, "C_S_AXI_CONTROL_DATA_WIDTH": 32,
                           "C_S_AXI_CONTROL_BASEADDR": f"0x{b.addresses[ACCEL_NAME][0]:08X}",
                           "C_S_AXI_CONTROL_HIGHADDR": f"0x{sum(b.addresses[ACCEL_NAME]) - 1:08X}",
                           "CLOCK_MHZ": FABRIC_CLOCK_MHZ}, "      ")
        + _registers_xml("      ")
        + "      <PORTS>\n"
        f'        <PORT DIR="I" NAME="ap_clk" SIGIS="clk" SIGNAME="{clk}"/>\n'
        f'        <PORT DIR="I" NAME="ap_rst_n" SIGIS="rst" SIGNAME="{ACCEL_RESET_AND}_Res"/>\n'
        "      </PORTS>\n"
        "    </MODULE>\n"
        f'    <MODULE FULLNAME="/{ACCEL_RESET_AND}" INSTANCE="{ACCEL_RESET_AND}" MODTYPE="util_vector_logic" VLNV="{VLNV["util_vector_logic"]}">\n'
        + _parameters_xml({"C_OPERATION": "and", "C_SIZE": 1}, "      ")
        + "      <PORTS>\n"
        f'        <PORT DIR="I" NAME="Op1" SIGIS="undef" SIGNAME="{rstn}"/>\n'
        '        <PORT DIR="I" NAME="Op2" SIGIS="undef" SIGNAME="axi_dma_s2mm_prmry_reset_out_n"/>\n'
        f'        <PORT DIR="O" NAME="Res" SIGIS="undef" SIGNAME="{ACCEL_RESET_AND}_Res"/>\n'
        "      </PORTS>\n"
        "    </MODULE>\n"
        f'    <MODULE FULLNAME="/{RESET_NAME}" INSTANCE="{RESET_NAME}" MODTYPE="proc_sys_reset" VLNV="{VLNV["proc_sys_reset"]}">\n'
        + _parameters_xml({"C_NUM_PERP_ARESETN": 1}, "      ")
        + "      <PORTS>\n"
        f'        <PORT DIR="I" NAME="slowest_sync_clk" SIGIS="clk" SIGNAME="{clk}"/>\n'
        f'        <PORT DIR="O" NAME="peripheral_aresetn" SIGIS="rst" SIGNAME="{rstn}"/>\n'
        "      </PORTS>\n"
        "    </MODULE>\n"
        "  </MODULES>\n"
        "</EDKSYSTEM>\n"
    )


# ------------------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.board_design", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("tcl", "hwh"):
        p = sub.add_parser(cmd)
        p.add_argument("--board", default=DEFAULT_BOARD, help=f"one of {', '.join(BOARDS)}")
        p.add_argument("--out", help="write here instead of stdout")
    sub.add_parser("boards", help="list the boards")
    args = parser.parse_args(argv)
    if args.command == "boards":
        for b in BOARDS.values():
            print(f"{b.name}\t{b.part}\t{b.board_part}")
        return 0
    try:
        text = render_tcl(args.board) if args.command == "tcl" else render_hwh(args.board)
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
