"""Three independent witnesses of the overlay's register interface agree: the simulated board's
own tables from PG021 and UG1399 (`lenet5_pynq.simboard.registers`), the overlay driver's
constants (`lenet5_pynq.overlay`, `regmap.REGISTERS`, `board_design`), and pynq's stock
`pynq.lib.dma.DMA`, whose offsets and masks are read off the accesses it makes.  The simulated
board imports neither driver, so a wrong offset in one of them is caught, not mirrored."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lenet5_pynq import board_design, regmap
from lenet5_pynq.simboard import registers as reg

pynq = pytest.importorskip("pynq", reason="pynq is not installed (the [board] extra)")

from lenet5_pynq.overlay import core as drv_core  # noqa: E402
from lenet5_pynq.overlay import dma as drv_dma  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lenet5_pynq"


# ------------------------------------------------------------------ the tables vs the driver
def test_pg021_register_map_is_the_drivers():
    for name, offset in reg.PG021_DIRECT_REGISTER_MODE_MAP.items():
        assert getattr(drv_dma, name) == offset, name
    # and the driver has no register offset the guide's map lacks
    driver_regs = {n for n in vars(drv_dma) if re.fullmatch(r"(MM2S|S2MM)_[A-Z_]+", n)}
    assert driver_regs == set(reg.PG021_DIRECT_REGISTER_MODE_MAP)


@pytest.mark.parametrize("register", [reg.DMACR, reg.DMASR], ids=lambda r: r.name)
def test_pg021_fields_are_the_drivers(register):
    kind = register.name.split("_", 1)[1]  # DMACR / DMASR
    composites = {"DMACR_RESET_VALUE", "DMASR_ERRORS", "DMASR_BITS"}
    driver = {n: v for n, v in vars(drv_dma).items() if n.startswith(kind + "_") and n not in composites}
    table = {f"{kind}_{f.name.upper()}": f.mask for f in register.fields if f.width == 1 and f.name != "Reserved"}
    for name, value in driver.items():
        assert name in table, f"the driver's {name} is no field of PG021's {register.name}"
        assert value == table[name], name
    if kind == "DMASR":
        assert driver == table  # the driver names every status bit
        assert {f.mask: f.name for f in register.fields} == drv_dma.DMASR_BITS
        assert register.mask(*reg.PG021_DMASR_ERRORS) == drv_dma.DMASR_ERRORS
    else:
        # what the driver writes with RS: PG021's reset value of the writable fields (IRQThreshold 1)
        assert drv_dma.DMACR_RESET_VALUE == register.reset & register.writable() == 0x0001_0000


def test_ug1399_control_register_is_the_drivers():
    for name in ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY"):
        assert getattr(drv_core, name) == reg.CTRL.mask(name)
    assert reg.CTRL.mask("AUTO_RESTART") == drv_core.AP_AUTO_RESTART
    assert reg.CTRL.offset == drv_core.REG_CTRL
    assert reg.lenet5_register("n").offset == drv_core.REG_N
    assert reg.lenet5_register("mode").offset == drv_core.REG_MODE


def test_accelerator_register_map_is_the_contracts():
    """regmap.REGISTERS (the driver's offsets) under board_design's metadata names is the map
    UG1399's rules give for the top's arguments."""
    assert set(regmap.REGISTERS) == set(board_design.ACCEL_REGISTER_NAMES)
    mapped = {board_design.ACCEL_REGISTER_NAMES[k]: off for k, off in regmap.REGISTERS.items()}
    assert mapped == {r.name: r.offset for r in reg.LENET5_REGISTERS}


def test_the_models_arguments_are_the_hls_tops():
    """The scalar arguments on the s_axilite bundle, in the order of the top's signature."""
    src = (ROOT / "hls_src" / "lenet5.cpp").read_text()
    sig = re.search(r"void\s+lenet5\s*\(([^)]*)\)\s*\{", src).group(1)
    scalars = [re.findall(r"\w+", p)[-1] for p in sig.split(",") if "stream" not in p]
    axilite = re.findall(r"#pragma HLS INTERFACE s_axilite port\s*=\s*(\w+)", src)
    assert scalars == [a for a in axilite if a != "return"]
    assert tuple(scalars) == tuple(r.name for r in reg.LENET5_ARGUMENTS)


# ------------------------------------------------------------------ the tables vs pynq.lib.dma
class ScriptedDevice(pynq.Device):
    """A pynq device whose registers answer from a script, recording every access by its
    PG021 name (through the simulated board's table, the thing under test)."""

    def __init__(self):
        super().__init__("scripted-dma")
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False}
        self.names = {off: name for name, off in reg.PG021_DIRECT_REGISTER_MODE_MAP.items()}
        self.status = 0  # what both DMASRs read
        self.values = {}
        self.log = []

    def read_registers(self, address, length):
        name = self.names.get(address - BASE, hex(address - BASE))
        self.log.append(("read", name))
        if len(self.log) > 10_000:  # pynq's driver spins without a deadline
            raise AssertionError(
                f"pynq's DMA driver is still polling {name}: it waits for a bit the table does not set"
            )
        value = self.status if name.endswith("DMASR") else self.values.get(name, 0)
        return value.to_bytes(4, "little")[:length]

    def write_registers(self, address, data):
        name = self.names.get(address - BASE, hex(address - BASE))
        self.log.append(("write", name, int.from_bytes(bytes(data), "little")))


BASE = 0x4040_0000


class _Buffer:  # what _SDMAChannel.transfer reads of a PynqBuffer
    physical_address = 0x1_2345_6780
    nbytes = 0x600

    def flush(self):
        pass

    def invalidate(self):
        pass


@pytest.fixture
def pynq_dma():
    from pynq.lib.dma import DMA

    device = ScriptedDevice()
    description = {
        "phys_addr": BASE,
        "addr_range": 0x1_0000,
        "device": device,
        "interrupts": {},
        "gpio": {},
        "fullpath": board_design.DMA_NAME,
        "type": board_design.VLNV["axi_dma"],
        "parameters": {k: str(v) for k, v in board_design.board("zcu104").dma_params.items()},
    }
    dma = DMA(description)
    return dma, device


def fields_of(register, value):
    return {f.name for f in register.fields if f.name != "Reserved" and value & f.mask}


def test_pynq_dma_starts_channels_with_rs_in_their_dmacr(pynq_dma):
    _, device = pynq_dma
    writes = [entry[1:] for entry in device.log if entry[0] == "write"]
    assert [name for name, _ in writes] == ["MM2S_DMACR", "S2MM_DMACR"]
    assert all(fields_of(reg.DMACR, value) == {"RS"} for _, value in writes)
    assert {name for op, name, *_ in device.log if op == "read"} <= {"MM2S_DMASR", "S2MM_DMASR"}


@pytest.mark.parametrize("channel", ["sendchannel", "recvchannel"])
def test_pynq_dma_status_masks_are_pg021s(pynq_dma, channel):
    """Set each DMASR bit alone and see which of pynq's channel properties it moves."""
    dma, device = pynq_dma
    ch = getattr(dma, channel)
    prefix = "MM2S" if channel == "sendchannel" else "S2MM"
    moves = {"halts": set(), "idle": set(), "error": set()}
    for f in reg.DMASR.fields:
        device.status = f.mask
        device.log.clear()
        if not ch.running:
            moves["halts"].add(f.name)
        if ch.idle:
            moves["idle"].add(f.name)
        if ch.error:
            moves["error"].add(f.name)
        assert {name for _, name, *_ in device.log} == {f"{prefix}_DMASR"}
    assert moves == {"halts": {"Halted"}, "idle": {"Idle"}, "error": set(reg.PG021_DMASR_ERRORS)}


@pytest.mark.parametrize("channel,prefix,addr", [("sendchannel", "MM2S", "SA"), ("recvchannel", "S2MM", "DA")])
def test_pynq_dma_transfer_writes_address_then_length(pynq_dma, channel, prefix, addr):
    dma, device = pynq_dma
    ch = getattr(dma, channel)
    device.status = 0  # running, not idle: the first transfer after start
    device.log.clear()
    ch.transfer(_Buffer())
    writes = [entry[1:] for entry in device.log if entry[0] == "write"]
    assert writes == [
        (f"{prefix}_{addr}", _Buffer.physical_address & 0xFFFF_FFFF),
        (f"{prefix}_{addr}_MSB", _Buffer.physical_address >> 32),
        (f"{prefix}_LENGTH", _Buffer.nbytes),
    ]
    # wait(): done once DMASR.Idle; the bytes moved are read back from LENGTH
    device.status = reg.DMASR.mask("Idle")
    device.values[f"{prefix}_LENGTH"] = 0x200
    ch.wait()
    assert ch.transferred == 0x200


@pytest.mark.parametrize("bit,word", [("DMAIntErr", "Internal"), ("DMASlvErr", "Slave"), ("DMADecErr", "Decode")])
def test_pynq_dma_names_each_error_bit(pynq_dma, bit, word):
    dma, device = pynq_dma
    device.status = 0
    dma.sendchannel.transfer(_Buffer())
    device.status = reg.DMASR.mask(bit, "Err_Irq")  # before Halted follows: pynq's wait() checks running first
    with pytest.raises(RuntimeError, match=word):
        dma.sendchannel.wait()


def test_pynq_dma_length_limit_is_pg021s():
    from pynq.lib import dma

    assert dma.MAX_C_SG_LENGTH_WIDTH == reg.PG021_MAX_LENGTH_WIDTH
    assert board_design.DMA_LENGTH_WIDTH <= reg.PG021_MAX_LENGTH_WIDTH


# ------------------------------------------------------------------ the model's reset values
def test_dma_registers_read_pg021_reset_values():
    """After a soft reset: DMACR reads IRQThreshold 1 and the reserved bit 1 that "is always read
    as 1"; DMASR reads Halted (PG021, MM2S_DMACR and MM2S_DMASR register details)."""
    from simboard_fixtures import make_board, make_overlay

    board = make_board("pynq-z2")
    ol = make_overlay(board)
    mmio = pynq.MMIO(board.board.addresses[board_design.DMA_NAME][0], 0x100, device=board)
    try:
        mmio.write(0x00, 1 << 2)  # MM2S_DMACR.Reset
        while mmio.read(0x00) & (1 << 2):
            pass
        assert [mmio.read(off) for off in (0x00, 0x04, 0x30, 0x34)] == [0x0001_0002, 0x1, 0x0001_0002, 0x1]
        mmio.write(0x00, 0x0001_0001)  # RS: bit 1 still reads 1, writes to it have no effect
        assert mmio.read(0x00) == 0x0001_0003 and mmio.read(0x04) == 0
    finally:
        ol.reset()


# ------------------------------------------------------------------ the engines do not import one another
def _imports(path: Path) -> set[str]:
    """Absolute names of the modules a package file imports."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(
    "engine,forbidden",
    [
        ("simboard", ("lenet5_pynq.overlay", "pynq.lib")),
        ("overlay", ("lenet5_pynq.simboard", "lenet5_pynq.backends.csim", "lenet5_pynq.csim_library")),
    ],
)
def test_engines_do_not_import_one_another(engine, forbidden):
    for path in sorted((PACKAGE / engine).glob("*.py")):
        bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in forbidden)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_simboard_uses_only_csims_public_api():
    for path in sorted((PACKAGE / "simboard").glob("*.py")):
        used = set(re.findall(r"\bcsim\.(\w+)", path.read_text()))
        private = {n for n in used if n.startswith("_") or n == "lock"}
        assert not private, f"{path.relative_to(ROOT)} reaches into csim's {sorted(private)}"


def test_contract_imports_no_engine():
    bad = {
        n
        for n in _imports(PACKAGE / "board_design.py")
        if n.startswith(("lenet5_pynq.overlay", "lenet5_pynq.simboard", "lenet5_pynq.backends"))
    }
    assert not bad


def test_simulated_board_runs_without_the_drivers_modules():
    """At run time too: a simulated board configured and driven through pynq.MMIO never loads the
    overlay driver (nor pynq's DMA driver, which pynq.Overlay would bind)."""
    script = textwrap.dedent("""
        import sys
        import pynq
        from lenet5_pynq.backends.base import BackendUnavailable
        from lenet5_pynq.simboard import SimBoard, device
        try:
            board = SimBoard("pynq-z2")
        except BackendUnavailable:
            print("unavailable"); sys.exit(0)
        parser = board.get_bitfile_metadata(str(board.bitfile))
        class Bit:
            bitfile_name = str(board.bitfile)
            partial = False
        board.download(Bit(), parser)
        base = parser.ip_dict["axi_dma"]["phys_addr"]
        assert pynq.MMIO(base, 0x100, device=board).read(0x04) & 1  # MM2S_DMASR.Halted after power-on
        print(sorted(m for m in sys.modules if m.startswith(("lenet5_pynq.overlay", "pynq.lib.dma"))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "unavailable":
        pytest.skip("the C-simulation library is unavailable")
    assert out.stdout.strip() == "[]"
