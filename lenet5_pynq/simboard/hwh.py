"""The simulated board's hardware handoff: the ``.hwh`` a Vivado build of the block design
(`lenet5_pynq.board_design`) would carry, and the one place it is parsed back.

    python -m lenet5_pynq.simboard hwh --board BOARD [--out FILE]

The rendering is reduced to what pynq's .hwh parsers and the driver read: modules with VLNV and
parameters, the PS's memory map and fabric clock, the AXI4-Lite bus interfaces behind it, the
DMA's configuration, the accelerator's register map and the clock/reset nets.  Addresses,
instance names and the DMA configuration come from `board_design`; the accelerator's register
map is the one Vitis HLS would write, from UG1399's rules (`registers`), so the driver's check
of the map against its own offsets is a real comparison here too.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .. import board_design as bd
from . import registers as reg

# The access types of the guides' tables as a .hwh spells them.
_HWH_ACCESS = {"RW": "read-write", "RO": "read-only", "COR": "read-only", "TOW": "read-write", "R/WC": "read-write"}


def _parameters(parent: ET.Element, params: dict) -> None:
    node = ET.SubElement(parent, "PARAMETERS")
    for k, v in params.items():
        ET.SubElement(node, "PARAMETER", NAME=k, VALUE=str(v))


def _properties(parent: ET.Element, props: dict) -> None:
    for k, v in props.items():
        ET.SubElement(parent, "PROPERTY", NAME=k, VALUE=str(v))


def _ports(parent: ET.Element, ports) -> None:
    node = ET.SubElement(parent, "PORTS")
    for direction, name, sigis, signame in ports:
        ET.SubElement(node, "PORT", DIR=direction, NAME=name, SIGIS=sigis, SIGNAME=signame)


def _module(root: ET.Element, inst: str, modtype: str, vlnv: str) -> ET.Element:
    return ET.SubElement(root, "MODULE", FULLNAME=f"/{inst}", INSTANCE=inst, MODTYPE=modtype, VLNV=vlnv)


_AXI_LITE_READ = ("ARADDR", "ARVALID", "ARREADY", "RDATA", "RVALID", "RREADY")  # enough to name the bus


def _axi_lite(mod: ET.Element, name: str, master: bool, busname: str) -> None:
    """An AXI4-Lite bus interface of `mod` and the ports its port map names (pynq's metadata
    parser finds the IP behind the PS's memory map through these)."""
    ports = mod.find("PORTS")
    interfaces = mod.find("BUSINTERFACES")
    if interfaces is None:
        interfaces = ET.SubElement(mod, "BUSINTERFACES")
    itf = ET.SubElement(
        interfaces,
        "BUSINTERFACE",
        BUSNAME=busname,
        NAME=name,
        TYPE="MASTER" if master else "SLAVE",
        VLNV="xilinx.com:interface:aximm:1.0",
    )
    portmaps = ET.SubElement(itf, "PORTMAPS")
    for signal in _AXI_LITE_READ:
        physical = f"{name}_{signal}".lower()
        driven_by_master = (signal.startswith("AR") and signal != "ARREADY") or signal == "RREADY"
        ET.SubElement(
            ports,
            "PORT",
            DIR="O" if driven_by_master == master else "I",
            NAME=physical,
            SIGIS="undef",
            SIGNAME=f"{busname}_{signal}".lower(),
        )
        ET.SubElement(portmaps, "PORTMAP", LOGICAL=signal, PHYSICAL=physical)


def _ps_parameters(b: bd.Board) -> dict[str, object]:
    """PS parameters as a Vivado build of this board would record them: the ones the design sets,
    plus the fabric clock settings pynq's .hwh parser reads."""
    params: dict[str, object] = dict(b.ps_config)
    if b.family == "zynq":
        for i in range(4):
            params[f"PCW_FPGA_FCLK{i}_ENABLE"] = int(i == 0)
            # IO PLL 1000 MHz / (10 * 1) = 100 MHz
            params[f"PCW_FCLK{i}_PERIPHERAL_CLKSRC"] = "IO PLL"
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = 10 if i == 0 else 1
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = 1
    else:
        for i in range(4):
            params[f"PSU__FPGA_PL{i}_ENABLE"] = int(i == 0)
            # IO PLL 1500 MHz / (15 * 1) = 100 MHz
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL"] = "IOPLL"
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0"] = 15 if i == 0 else 4
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1"] = 1
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ"] = bd.FABRIC_CLOCK_MHZ if i == 0 else 0
    return params


def _memrange(memmap: ET.Element, b: bd.Board, inst: str, slave: str, block: str) -> None:
    base, size = b.addresses[inst]
    ET.SubElement(
        memmap,
        "MEMRANGE",
        ADDRESSBLOCK=block,
        BASENAME="C_BASEADDR",
        BASEVALUE=f"0x{base:08X}",
        HIGHNAME="C_HIGHADDR",
        HIGHVALUE=f"0x{base + size - 1:08X}",
        INSTANCE=inst,
        IS_DATA="TRUE",
        IS_INSTRUCTION="TRUE",
        MASTERBUSINTERFACE=b.ps_master,
        MEMTYPE="REGISTER",
        SLAVEBUSINTERFACE=slave,
    )


# The accelerator's control registers span 0 .. the last argument's data and reserved words.
_CONTROL_SPAN = reg.LENET5_ARGUMENTS[-1].offset + reg.UG1399_SCALAR_STRIDE
_CONTROL_ADDR_WIDTH = (_CONTROL_SPAN - 1).bit_length()  # C_S_AXI_CONTROL_ADDR_WIDTH


def _accelerator_registers(parent: ET.Element) -> None:
    """The accelerator's register map as Vitis HLS writes it into the IP (UG1399)."""
    blocks = ET.SubElement(parent, "ADDRESSBLOCKS")
    block = ET.SubElement(
        blocks,
        "ADDRESSBLOCK",
        ACCESS="read-write",
        INTERFACE=bd.ACCEL_CONTROL.upper(),
        NAME=bd.ACCEL_CONTROL_BLOCK,
        RANGE=str(1 << _CONTROL_ADDR_WIDTH),
        USAGE="register",
    )
    node = ET.SubElement(block, "REGISTERS")
    for r in reg.LENET5_REGISTERS:
        rnode = ET.SubElement(node, "REGISTER", NAME=r.name)
        _properties(
            rnode, {"DESCRIPTION": f"{r.name} register", "ADDRESS_OFFSET": r.offset, "SIZE": 32, "ACCESS": "read-write"}
        )
        fields = ET.SubElement(rnode, "FIELDS")
        for f in r.fields:
            fnode = ET.SubElement(fields, "FIELD", NAME=f.name)
            _properties(
                fnode,
                {"DESCRIPTION": f.name, "ACCESS": _HWH_ACCESS[f.access], "BIT_OFFSET": f.bit, "BIT_WIDTH": f.width},
            )


def render(name: str) -> str:
    """The .hwh of board `name` (one of `board_design.BOARDS`)."""
    b = bd.board(name)
    bd.check(b)
    clk, rstn = f"{bd.PS}_{b.ps_clock_pin}", f"{bd.RESET_NAME}_peripheral_aresetn"
    dma_reset_out = f"{bd.DMA_NAME}_s2mm_prmry_reset_out_n"
    accel_reset = f"{bd.ACCEL_RESET_AND}_Res"

    root = ET.Element(
        "EDKSYSTEM", EDWVERSION="1.2", TIMESTAMP="simulated", VIVADOVERSION="simulated board (lenet5_pynq.simboard.hwh)"
    )
    ET.SubElement(
        root,
        "SYSTEMINFO",
        ARCH=b.family,
        BOARD=b.board_part,
        DEVICE=b.part.split("-")[0],
        NAME=bd.OVERLAY_NAME,
        PACKAGE="",
        SPEEDGRADE="",
    )
    ET.SubElement(root, "EXTERNALPORTS")
    modules = ET.SubElement(root, "MODULES")

    ps = _module(modules, bd.PS, b.ps_modtype, b.ps_vlnv)
    _parameters(ps, _ps_parameters(b))
    memmap = ET.SubElement(ps, "MEMORYMAP")
    _memrange(memmap, b, bd.DMA_NAME, "S_AXI_LITE", "Reg")
    _memrange(memmap, b, bd.ACCEL_NAME, bd.ACCEL_CONTROL, bd.ACCEL_CONTROL_BLOCK)
    _ports(ps, [("O", b.ps_clock_pin, "clk", clk)])
    _axi_lite(ps, b.ps_master, True, f"{bd.PS}_{b.ps_master}")

    dma_base, dma_size = b.addresses[bd.DMA_NAME]
    dma = _module(modules, bd.DMA_NAME, "axi_dma", bd.VLNV["axi_dma"])
    # Vivado records both the HDL generics (C_...) and the IP's user parameters (c_...).
    _parameters(
        dma,
        {
            **{k.upper(): v for k, v in b.dma_params.items()},
            **b.dma_params,
            "C_BASEADDR": f"0x{dma_base:08X}",
            "C_HIGHADDR": f"0x{dma_base + dma_size - 1:08X}",
        },
    )
    _ports(
        dma,
        [
            ("I", "s_axi_lite_aclk", "clk", clk),
            ("I", "axi_resetn", "rst", rstn),
            ("O", "s2mm_prmry_reset_out_n", "rst", dma_reset_out),
        ],
    )
    _axi_lite(dma, "S_AXI_LITE", False, f"{bd.CTRL_INTERCONNECT}_M00_AXI")

    acc_base, acc_size = b.addresses[bd.ACCEL_NAME]
    accel = _module(modules, bd.ACCEL_NAME, bd.ACCEL_NAME, bd.VLNV["accel"])
    _parameters(
        accel,
        {
            "C_S_AXI_CONTROL_ADDR_WIDTH": _CONTROL_ADDR_WIDTH,
            "C_S_AXI_CONTROL_DATA_WIDTH": 32,
            "C_S_AXI_CONTROL_BASEADDR": f"0x{acc_base:08X}",
            "C_S_AXI_CONTROL_HIGHADDR": f"0x{acc_base + acc_size - 1:08X}",
            "CLOCK_MHZ": bd.FABRIC_CLOCK_MHZ,
        },
    )
    _accelerator_registers(accel)
    _ports(accel, [("I", "ap_clk", "clk", clk), ("I", "ap_rst_n", "rst", accel_reset)])
    _axi_lite(accel, bd.ACCEL_CONTROL, False, f"{bd.CTRL_INTERCONNECT}_M01_AXI")

    andgate = _module(modules, bd.ACCEL_RESET_AND, "util_vector_logic", bd.VLNV["util_vector_logic"])
    _parameters(andgate, {"C_OPERATION": "and", "C_SIZE": 1})
    _ports(
        andgate, [("I", "Op1", "undef", rstn), ("I", "Op2", "undef", dma_reset_out), ("O", "Res", "undef", accel_reset)]
    )

    rst = _module(modules, bd.RESET_NAME, "proc_sys_reset", bd.VLNV["proc_sys_reset"])
    _parameters(rst, {"C_NUM_PERP_ARESETN": 1})
    _ports(rst, [("I", "slowest_sync_clk", "clk", clk), ("O", "peripheral_aresetn", "rst", rstn)])

    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def parse(hwh: str | Path):
    """The overlay metadata of a .hwh (what `pynq.Device.get_bitfile_metadata` returns:
    ``ip_dict``, ``mem_dict``, ``hierarchy_dict``, ...), parsed as pynq 3.0 to 4.0 parse a full
    bitstream's on a board: ``pynqmetadata``'s `RuntimeMetadataParser` over its `Metadata`.

    (pynq's public ``hwh_parser.HWH`` is chosen by the CPU at import and is an abstract class off
    a Zynq, and its private family parsers are what pynq uses for partial bitstreams only.)
    """
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser

    parser = RuntimeMetadataParser(Metadata(input=Path(hwh)))
    # The fabric clock of the simulated board is fixed; pynq's Clocks only runs on ARM.
    parser.clock_dict = {}
    return parser
