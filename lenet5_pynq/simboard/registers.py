"""The register tables of the overlay's two AXI4-Lite slaves, written from the product guides as
the simulated board's own data.

The simulated board is a witness of the overlay driver (and of pynq's own DMA driver): it never
reads their constants, so a wrong offset or bit in a driver meets a model that disagrees.
``tests/test_register_tables.py`` compares these tables with the driver's constants, with the
accesses pynq's ``pynq.lib.dma.DMA`` makes, and with the register map of the HLS top.

* PG021, AXI DMA v7.1 LogiCORE IP Product Guide: "Direct Register Mode Register Address Map"
  and the register detail tables of MM2S_DMACR and MM2S_DMASR (S2MM_DMACR and S2MM_DMASR have
  the same fields at 30h and 34h).
* UG1399, Vitis High-Level Synthesis User Guide, "S_AXILITE Control Register Map": the
  ``ap_ctrl_hs`` block-level control registers at 0x00-0x0C and the function's scalar arguments
  from 0x10 on.

Field access types as the guides write them: ``RW``, ``RO``, ``R/WC`` (write 1 to clear),
``COR`` (clear on read), ``TOW`` (toggle on write).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """A bit field of a register: its guide name, least significant bit, width, access type and
    value after reset."""

    name: str
    bit: int
    width: int = 1
    access: str = "RW"
    reset: int = 0

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.bit


@dataclass(frozen=True)
class Register:
    """A 32-bit register: its guide name, byte offset in the slave's window, and fields."""

    name: str
    offset: int
    fields: tuple[Field, ...] = ()

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")

    def mask(self, *names: str) -> int:
        """The bits of the named fields together."""
        m = 0
        for name in names:
            m |= self[name].mask
        return m

    @property
    def reset(self) -> int:
        """The value the register reads after a reset."""
        return sum(f.reset << f.bit for f in self.fields)

    def writable(self) -> int:
        """The bits a write changes (RW fields)."""
        return sum(f.mask for f in self.fields if f.access == "RW")


# ------------------------------------------------------------------------------- PG021, AXI DMA
# Table "Direct Register Mode Register Address Map" (offsets from C_BASEADDR).
PG021_DIRECT_REGISTER_MODE_MAP = {
    "MM2S_DMACR": 0x00,  # MM2S DMA control register
    "MM2S_DMASR": 0x04,  # MM2S DMA status register
    "MM2S_SA": 0x18,  # MM2S source address, lower 32 bits
    "MM2S_SA_MSB": 0x1C,  # MM2S source address, upper 32 bits (address space > 32 bits)
    "MM2S_LENGTH": 0x28,  # MM2S transfer length (bytes); a write starts the transfer
    "S2MM_DMACR": 0x30,  # S2MM DMA control register
    "S2MM_DMASR": 0x34,  # S2MM DMA status register
    "S2MM_DA": 0x48,  # S2MM destination address, lower 32 bits
    "S2MM_DA_MSB": 0x4C,  # S2MM destination address, upper 32 bits
    "S2MM_LENGTH": 0x58,  # S2MM buffer length (bytes); after completion, the bytes received
}
PG021_MAX_LENGTH_WIDTH = 26  # "Width of Buffer Length Register" (c_sg_length_width): 8 to 26 bits
PG021_DEFAULT_LENGTH_WIDTH = 14  # its default

# Table "MM2S_DMACR Register Details" (S2MM_DMACR: the same fields).
PG021_DMACR_FIELDS = (
    Field("RS", 0),  # run/stop; cleared by the DMA on an error
    Field("Reserved", 1, access="RO", reset=1),  # "always read as 1"
    Field("Reset", 2),  # soft reset of the whole AXI DMA; reads 1 until the reset completes
    Field("IOC_IrqEn", 12),
    Field("Dly_IrqEn", 13),
    Field("Err_IrqEn", 14),
    Field("IRQThreshold", 16, 8, reset=1),
    Field("IRQDelay", 24, 8),
)

# Table "MM2S_DMASR Register Details" (S2MM_DMASR: the same fields).
PG021_DMASR_FIELDS = (
    Field("Halted", 0, access="RO", reset=1),  # RS = 0 and operations have halted, or an error
    Field("Idle", 1, access="RO"),  # Direct Register Mode: the programmed transfer has completed
    Field("SGIncld", 3, access="RO"),  # C_INCLUDE_SG (0 in this design)
    Field("DMAIntErr", 4, access="RO"),  # internal error (length 0; S2MM: packet beyond LENGTH)
    Field("DMASlvErr", 5, access="RO"),  # slave error on the memory-mapped side
    Field("DMADecErr", 6, access="RO"),  # decode error: the address decodes to nothing
    Field("IOC_Irq", 12, access="R/WC"),  # transfer completed
    Field("Dly_Irq", 13, access="R/WC"),
    Field("Err_Irq", 14, access="R/WC"),
)
PG021_DMASR_ERRORS = ("DMAIntErr", "DMASlvErr", "DMADecErr")  # each halts the channel until a reset


def pg021_register(name: str) -> Register:
    """One register of PG021's Direct Register Mode map, with its fields."""
    kind = name.split("_", 1)[1]
    fields = {"DMACR": PG021_DMACR_FIELDS, "DMASR": PG021_DMASR_FIELDS}.get(kind, ())
    return Register(name, PG021_DIRECT_REGISTER_MODE_MAP[name], fields)


DMACR = pg021_register("MM2S_DMACR")
DMASR = pg021_register("MM2S_DMASR")

# ------------------------------------------------------------------- UG1399, ap_ctrl_hs over AXI4-Lite
# "S_AXILITE Control Register Map": 0x00-0x0C are the block-level protocol and interrupt registers,
# with the names and fields Vitis HLS gives them in the IP's register map (and so in the .hwh).
UG1399_CONTROL_REGISTERS = (
    Register(
        "CTRL",
        0x00,
        (
            Field("AP_START", 0),  # set by software; cleared by the core with ap_ready (unless AUTO_RESTART)
            Field("AP_DONE", 1, access="COR"),
            Field("AP_IDLE", 2, access="RO", reset=1),
            Field("AP_READY", 3, access="COR"),
            Field("AUTO_RESTART", 7),
        ),
    ),
    Register("GIER", 0x04, (Field("Enable", 0),)),  # global interrupt enable
    Register("IP_IER", 0x08, (Field("CHAN0_INT_EN", 0), Field("CHAN1_INT_EN", 1))),  # ap_done, ap_ready
    Register("IP_ISR", 0x0C, (Field("CHAN0_INT_ST", 0, access="TOW"), Field("CHAN1_INT_ST", 1, access="TOW"))),
)
UG1399_ARGUMENTS_BASE = 0x10  # the first scalar argument's data register
UG1399_SCALAR_STRIDE = 8  # a scalar of up to 32 bits: its data word and a reserved word


def ug1399_arguments(names: tuple[str, ...]) -> tuple[Register, ...]:
    """The data registers of 32-bit scalar arguments on the s_axilite bundle, in the order of the
    function's signature, as Vitis HLS assigns them (from 0x10, 8 bytes each)."""
    return tuple(
        Register(name, UG1399_ARGUMENTS_BASE + UG1399_SCALAR_STRIDE * i, (Field(name, 0, 32),))
        for i, name in enumerate(names)
    )


# The accelerator's scalar arguments on its `control` bundle, in the order of the top's signature
# lenet5(in, out, ap_uint<32> n, ap_uint<32> mode) in hls_src/lenet5.cpp (the streams are not
# registers).
LENET5_ARGUMENTS = ug1399_arguments(("n", "mode"))
LENET5_REGISTERS = UG1399_CONTROL_REGISTERS + LENET5_ARGUMENTS


def lenet5_register(name: str) -> Register:
    """One of the accelerator's registers, by its name in the IP's register map."""
    for r in LENET5_REGISTERS:
        if r.name == name:
            return r
    raise KeyError(f"the accelerator has no register {name}")


CTRL = lenet5_register("CTRL")
IP_ISR = lenet5_register("IP_ISR")
