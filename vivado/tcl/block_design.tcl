# The LeNet-5 block design, for every board: Zynq PS with the board preset, one HP port, an AXI
# DMA in simple mode (64-bit streams, 26-bit length register), the LeNet-5 HLS IP, two AXI
# SmartConnects, a proc_sys_reset on the 100 MHz fabric clock, and an AND gate that resets the
# accelerator with the fabric reset or the DMA's soft reset (s2mm_prmry_reset_out_n).
#
# Every name, VLNV, setting and address comes from the variables of design_params.tcl, which
# `python -m lenet5_pynq.board_design tcl --board BOARD` generates from lenet5_pynq/board_design.py
# (the same description the simulated board renders its .hwh from).  Sourced by build.tcl.

proc config_props {pairs} {
    set props {}
    foreach {key value} $pairs { lappend props CONFIG.$key $value }
    return $props
}

proc create_lenet5_bd {} {
    foreach var {bd_name ps_family ps_name ps_vlnv ps_master ps_slave ps_clock_pin ps_reset_pin ps_config
                 dma_name dma_vlnv dma_config accel_name accel_vlnv accel_stream_in accel_stream_out
                 accel_control accel_control_block reset_name reset_vlnv accel_reset_and and_vlnv
                 ctrl_interconnect mem_interconnect interconnect_vlnv address_map} {
        upvar #0 $var $var
    }
    create_bd_design $bd_name
    current_bd_design $bd_name

    # ---- processing system with the board preset, then our ports and fabric clock
    set ps [create_bd_cell -type ip -vlnv $ps_vlnv $ps_name]
    if {$ps_family eq "zynq"} {
        apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
            -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
        set ps_master_clk M_AXI_GP0_ACLK
        set ps_slave_clk S_AXI_HP0_ACLK
    } else {
        apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
        set ps_master_clk maxihpm0_fpd_aclk
        set ps_slave_clk saxihp0_fpd_aclk
    }
    set_property -dict [config_props $ps_config] $ps

    # ---- AXI DMA, simple mode
    set dma [create_bd_cell -type ip -vlnv $dma_vlnv $dma_name]
    # the S2MM widths follow the connected stream unless marked as set by the user
    set_property -dict [list CONFIG.c_m_axi_s2mm_data_width.VALUE_SRC USER CONFIG.c_s_axis_s2mm_tdata_width.VALUE_SRC USER] $dma
    set_property -dict [config_props $dma_config] $dma

    # ---- the accelerator, resets, interconnects
    set accel [create_bd_cell -type ip -vlnv $accel_vlnv $accel_name]
    set rst [create_bd_cell -type ip -vlnv $reset_vlnv $reset_name]
    set and_gate [create_bd_cell -type ip -vlnv $and_vlnv $accel_reset_and]
    set_property -dict [list CONFIG.C_OPERATION {and} CONFIG.C_SIZE {1}] $and_gate
    set ctrl [create_bd_cell -type ip -vlnv $interconnect_vlnv $ctrl_interconnect]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {2}] $ctrl
    set mem [create_bd_cell -type ip -vlnv $interconnect_vlnv $mem_interconnect]
    set_property -dict [list CONFIG.NUM_SI {2} CONFIG.NUM_MI {1}] $mem

    # ---- AXI4-Lite control: PS master -> DMA and accelerator
    connect_bd_intf_net [get_bd_intf_pins $ps_name/$ps_master] [get_bd_intf_pins $ctrl_interconnect/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins $ctrl_interconnect/M00_AXI] [get_bd_intf_pins $dma_name/S_AXI_LITE]
    connect_bd_intf_net [get_bd_intf_pins $ctrl_interconnect/M01_AXI] [get_bd_intf_pins $accel_name/$accel_control]
    # ---- DMA memory masters -> PS high-performance port
    connect_bd_intf_net [get_bd_intf_pins $dma_name/M_AXI_MM2S] [get_bd_intf_pins $mem_interconnect/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins $dma_name/M_AXI_S2MM] [get_bd_intf_pins $mem_interconnect/S01_AXI]
    connect_bd_intf_net [get_bd_intf_pins $mem_interconnect/M00_AXI] [get_bd_intf_pins $ps_name/$ps_slave]
    # ---- the streams
    connect_bd_intf_net [get_bd_intf_pins $dma_name/M_AXIS_MM2S] [get_bd_intf_pins $accel_name/$accel_stream_in]
    connect_bd_intf_net [get_bd_intf_pins $accel_name/$accel_stream_out] [get_bd_intf_pins $dma_name/S_AXIS_S2MM]

    # ---- one fabric clock
    set clk [get_bd_pins $ps_name/$ps_clock_pin]
    connect_bd_net $clk \
        [get_bd_pins $ps_name/$ps_master_clk] [get_bd_pins $ps_name/$ps_slave_clk] \
        [get_bd_pins $dma_name/s_axi_lite_aclk] [get_bd_pins $dma_name/m_axi_mm2s_aclk] [get_bd_pins $dma_name/m_axi_s2mm_aclk] \
        [get_bd_pins $accel_name/ap_clk] [get_bd_pins $ctrl_interconnect/aclk] [get_bd_pins $mem_interconnect/aclk] \
        [get_bd_pins $reset_name/slowest_sync_clk]

    # ---- resets: fabric reset for everything; the accelerator also follows the DMA's soft reset
    connect_bd_net [get_bd_pins $ps_name/$ps_reset_pin] [get_bd_pins $reset_name/ext_reset_in]
    connect_bd_net [get_bd_pins $reset_name/peripheral_aresetn] \
        [get_bd_pins $dma_name/axi_resetn] [get_bd_pins $ctrl_interconnect/aresetn] [get_bd_pins $mem_interconnect/aresetn] \
        [get_bd_pins $accel_reset_and/Op1]
    connect_bd_net [get_bd_pins $dma_name/s2mm_prmry_reset_out_n] [get_bd_pins $accel_reset_and/Op2]
    connect_bd_net [get_bd_pins $accel_reset_and/Res] [get_bd_pins $accel_name/ap_rst_n]

    # ---- address map: DDR for the DMA masters automatically, the AXI4-Lite slaves exactly where
    # board_design.py places them
    assign_bd_address
    set space [get_bd_addr_spaces $ps_name/Data]
    dict for {inst spec} $address_map {
        lassign $spec offset range
        set seg [get_bd_addr_segs -of_objects $space -filter "NAME =~ *${inst}*"]
        if {[llength $seg] != 1} { error "address segment of $inst in $space: found '$seg'" }
        set_property range $range $seg
        set_property offset $offset $seg
    }

    validate_bd_design
    save_bd_design
}
