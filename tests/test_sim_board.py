"""The simulated board: its metadata comes from the one block-design description and parses with
pynq's own .hwh parsers; its DMA register model behaves as PG021 says and as pynq's own DMA
driver expects; its memory models the CPU cache."""

from __future__ import annotations

import numpy as np
import pytest
from simboard_fixtures import assert_exact, make_board, make_overlay, sample_images

from lenet5_pynq import board_design, hls_config, hls_stream, regmap
from lenet5_pynq import overlay as drv
from lenet5_pynq.simboard import hwh


@pytest.fixture(scope="module")
def ol(board):
    return make_overlay(board)


def _parse(name, which, tmp_path):
    """The board's .hwh through pynq's parser for full bitstreams (pynqmetadata, as on a board)
    or through its parser of the PS family (what pynq uses for partial bitstreams)."""
    from pynq.pl_server.hwh_parser import _HWHUltrascale, _HWHZynq
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser

    path = tmp_path / f"{name}.hwh"
    path.write_text(hwh.render(name))
    if which == "full":
        return RuntimeMetadataParser(Metadata(input=path))
    return (_HWHZynq if board_design.board(name).family == "zynq" else _HWHUltrascale)(str(path))


@pytest.mark.parametrize("which", ["full", "family"])
@pytest.mark.parametrize("name", list(board_design.BOARDS))
def test_hwh_parses_with_pynqs_parsers(name, which, tmp_path):
    b = board_design.board(name)
    parser = _parse(name, which, tmp_path)
    for inst, (base, size) in b.addresses.items():
        assert parser.ip_dict[inst]["phys_addr"] == base
        assert parser.ip_dict[inst]["addr_range"] == size
    assert parser.ip_dict[board_design.ACCEL_NAME]["type"] == hls_config.VLNV
    assert parser.ip_dict[board_design.DMA_NAME]["type"] == board_design.VLNV["axi_dma"]
    params = parser.ip_dict[board_design.DMA_NAME]["parameters"]
    assert int(params["c_sg_length_width"]) == board_design.DMA_LENGTH_WIDTH == 26
    assert int(params["c_m_axis_mm2s_tdata_width"]) == 64 and int(params["c_include_sg"]) == 0
    regs = parser.ip_dict[board_design.ACCEL_NAME]["registers"]
    for key, offset in regmap.REGISTERS.items():
        assert regs[board_design.ACCEL_REGISTER_NAMES[key]]["address_offset"] == offset
    assert parser.clock_dict[0]["enable"] == 1
    assert parser.clock_dict[0]["divisor0"] * parser.clock_dict[0]["divisor1"] == (10 if b.family == "zynq" else 15)


@pytest.mark.parametrize("name", list(board_design.BOARDS))
def test_tcl_carries_the_same_address_map(name):
    tcl = board_design.render_tcl(name)
    b = board_design.board(name)
    for inst, (base, size) in b.addresses.items():
        assert f"{inst} {{0x{base:08X} 0x{size:X}}}" in tcl
    assert f"c_sg_length_width {{{board_design.DMA_LENGTH_WIDTH}}}" in tcl
    assert f"set accel_vlnv {hls_config.VLNV}" in tcl


def test_overlapping_address_map_is_refused():
    b = board_design.board("pynq-z2")
    import dataclasses

    bad = dataclasses.replace(
        b, addresses={board_design.DMA_NAME: (0x4040_0000, 0x1_0000), board_design.ACCEL_NAME: (0x4040_8000, 0x1000)}
    )
    with pytest.raises(ValueError, match="overlap"):
        board_design.check(bad)


def test_board_names_from_pynq_images():
    assert board_design.board("Pynq-Z2").name == "pynq-z2"
    assert board_design.board("ZCU104").name == "zcu104"
    assert board_design.board("KV260").name == "kv260"
    with pytest.raises(ValueError):
        board_design.board("ultra96")


def test_pynq_dma_driver_runs_against_the_model(ol, board):
    """pynq's own DMA driver (pynq.lib.dma.DMA, bound by the .hwh's VLNV) moves a batch through
    the accelerator on the simulated board: the register model speaks PG021 as pynq does."""
    from pynq import allocate
    from pynq.lib.dma import DMA

    dma = ol.axi_dma
    assert isinstance(dma, DMA)
    images = sample_images(3)
    src = allocate((3, drv.IMAGE_BYTES), np.uint8, target=board)
    dst = allocate((3 * drv.RESULT_BYTES // 8,), np.uint64, target=board)
    src[:] = images.reshape(3, -1)
    core = ol.lenet5_core
    core.write(regmap.REGISTERS["N"], 3)
    core.write(regmap.REGISTERS["MODE"], hls_stream.MODE_CLASSIFY)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    core.write(regmap.REGISTERS["CTRL"], drv.AP_START)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dma.recvchannel.transferred == 3 * drv.RESULT_BYTES
    classes, logits = hls_stream.unpack_results(np.array(dst))
    from lenet5_pynq.backends.base import Prediction

    assert_exact(Prediction(classes, logits), images)
    ol.reset()  # the driver's cached register values are stale now


def test_cache_model_needs_flush_and_invalidate(board):
    from pynq import allocate

    buf = allocate((16,), np.uint8, target=board)
    buf[:] = 7
    assert board.memory.read(buf.physical_address, 16).tolist() == [0] * 16  # still in the "cache"
    buf.flush()
    assert board.memory.read(buf.physical_address, 16).tolist() == [7] * 16
    board.memory.write(buf.physical_address, np.full(16, 9, np.uint8))
    assert buf[0] == 7
    buf.invalidate()
    assert buf.tolist() == [9] * 16


def test_dma_model_status_bits(ol, board):
    from pynq import MMIO

    base = board.board.addresses[board_design.DMA_NAME][0]
    mmio = MMIO(base, 0x100, device=board)
    try:
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RESET)
        while mmio.read(drv.MM2S_DMACR) & drv.DMACR_RESET:
            pass
        assert mmio.read(drv.MM2S_DMASR) & drv.DMASR_HALTED
        mmio.write(drv.MM2S_LENGTH, 64)  # ignored while halted
        assert mmio.read(drv.MM2S_DMASR) == drv.DMASR_HALTED
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RS)
        assert mmio.read(drv.MM2S_DMASR) & drv.DMASR_HALTED == 0
        mmio.write(drv.MM2S_LENGTH, 0)  # a zero length is an internal error that halts
        sr = mmio.read(drv.MM2S_DMASR)
        assert sr & drv.DMASR_DMAINTERR and sr & drv.DMASR_HALTED and sr & drv.DMASR_ERR_IRQ
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RS)  # RS cannot restart a channel in error
        assert mmio.read(drv.MM2S_DMASR) & drv.DMASR_HALTED
        mmio.write(drv.MM2S_SA, 0x10)  # nothing allocated there
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RESET)
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RS)  # ignored: the reset is still in progress
        while mmio.read(drv.MM2S_DMACR) & drv.DMACR_RESET:
            pass
        mmio.write(drv.MM2S_DMACR, drv.DMACR_RS)
        mmio.write(drv.MM2S_SA, 0x10)
        mmio.write(drv.MM2S_LENGTH, 64)
        assert mmio.read(drv.MM2S_DMASR) & drv.DMASR_DMADECERR
        assert "DMADecErr" in drv.describe_status(mmio.read(drv.MM2S_DMASR))
    finally:
        ol.reset()


def test_unmapped_register_access_is_a_bus_error(board):
    from pynq import MMIO

    from lenet5_pynq.simboard import SimBusError

    with pytest.raises(SimBusError, match="no IP at address"):
        MMIO(0x4100_0000, 0x10, device=board).read(0)


def test_mm2s_waits_for_the_accelerator(ol, board):
    """An MM2S transfer larger than the stream's buffering completes only once the accelerator
    reads it, so a driver that waits for MM2S before ap_start would hang (here as on a board)."""
    from pynq import allocate

    dma = ol.dma
    src = allocate((4, drv.IMAGE_BYTES), np.uint8, target=board)
    src.flush()
    dma.mm2s.transfer(src.physical_address, src.nbytes)
    assert not dma.mm2s.status & drv.DMASR_IDLE
    ol.reset()
    assert_exact(ol.classify(sample_images(2)), sample_images(2))


def test_boards_keep_their_own_weights():
    from lenet5_pynq import export, weights

    a, b = make_board("pynq-z2"), make_board("kv260")
    ola, olb = make_overlay(a), make_overlay(b)
    params, _ = weights.load()
    ola.load_weights(export.alternate_params(params))
    images = sample_images(5, seed=3)
    alt_layers, _ = export.load_set(alternate=True)
    assert_exact(olb.classify(images), images)
    assert_exact(ola.classify(images), images, alt_layers)
    assert_exact(olb.classify(images[:1]), images[:1])
    # A new download is a power-on: the shipped weights again.
    ola.download()
    assert_exact(ola.classify(images), images)


@pytest.mark.parametrize("name", list(board_design.BOARDS))
def test_generated_tcl_is_valid_tcl(name, tmp_path):
    """The generated parameters and the block-design script parse as tcl (tclsh, where present)."""
    import shutil
    import subprocess
    from pathlib import Path

    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.skip("no tclsh")
    params = tmp_path / "design_params.tcl"
    params.write_text(board_design.render_tcl(name))
    bd = Path(__file__).resolve().parents[1] / "vivado" / "tcl" / "block_design.tcl"
    script = tmp_path / "check.tcl"
    script.write_text(
        f"source {params}\nsource {bd}\n"
        "puts [info procs create_lenet5_bd]\n"
        "puts [dict get $address_map lenet5]\n"
        "puts [llength [config_props $dma_config]]\n"
    )
    out = subprocess.run([tclsh, str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    base, size = board_design.board(name).addresses[board_design.ACCEL_NAME]
    lines = out.stdout.split("\n")
    assert lines[0] == "create_lenet5_bd"
    assert lines[1] == f"0x{base:08X} 0x{size:X}"
    assert int(lines[2]) == 2 * len(board_design.board(name).dma_params)
