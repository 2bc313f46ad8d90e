# Vivado batch flow of the LeNet-5 overlay: project, block design, validation, wrapper,
# synthesis, implementation, bitstream; lenet5.bit and lenet5.hwh are left in the current directory.
#
#   vivado -mode batch -source build.tcl -tclargs DESIGN_PARAMS.tcl HLS_IP_REPO JOBS
#
# Called by vivado/Makefile (make BOARD=pynq-z2).  Written to the documented Vivado tcl commands
# (UG835, UG994) of Vivado 2022.2 or later (wait_on_runs); not run on the development machines (no
# Vivado there): tests/test_tcl.py dry-runs it under tclsh with recording stand-ins.

if {[llength $argv] != 3} { error "usage: vivado -mode batch -source build.tcl -tclargs DESIGN_PARAMS.tcl HLS_IP_REPO JOBS" }
lassign $argv params_file ip_repo jobs
if {![file isfile $params_file]} { error "no design parameters '$params_file': python -m lenet5_pynq.board_design tcl --board BOARD --out FILE (make params)" }
if {![regexp {^[1-9][0-9]*$} $jobs]} { error "JOBS '$jobs' is not a whole number of parallel jobs (1 or more)" }
source $params_file
source [file join [file dirname [file normalize [info script]]] block_design.tcl]

# ---- project on the board preset, with the exported HLS IP in the catalog
create_project -force ${overlay_name}_${board_name} ./vivado -part $part
set_property board_part $board_part [current_project]
if {$board_connections ne ""} { set_property board_connections $board_connections [current_project] }
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog
if {[llength [get_ipdefs $accel_vlnv]] == 0} { error "IP $accel_vlnv not found in $ip_repo: run the HLS export first" }

# ---- block design, validated; HDL wrapper as top
create_lenet5_bd
set bd_file [get_files ${bd_name}.bd]
generate_target all $bd_file
make_wrapper -top -import $bd_file
set_property top ${bd_name}_wrapper [current_fileset]
update_compile_order -fileset sources_1

# ---- synthesis, implementation, bitstream
launch_runs synth_1 -jobs $jobs
wait_on_runs synth_1
if {[get_property PROGRESS [get_runs synth_1]] ne "100%"} { error "synthesis failed: see vivado/*.runs/synth_1/runme.log" }
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_runs impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { error "implementation failed: see vivado/*.runs/impl_1/runme.log" }

open_run impl_1
report_utilization -hierarchical -file utilization.rpt
report_timing_summary -file timing.rpt
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {![string is double -strict $wns]} { error "no constrained timing path at $fabric_clock_mhz MHz (timing.rpt)" }
if {$wns < 0} { error "timing not met at $fabric_clock_mhz MHz: worst negative slack $wns ns (timing.rpt)" }

# ---- the two files PYNQ needs, with the same stem
set bit [glob -nocomplain [get_property DIRECTORY [get_runs impl_1]]/${bd_name}_wrapper.bit]
if {[llength $bit] != 1} { error "no bitstream in [get_property DIRECTORY [get_runs impl_1]]" }
file copy -force [lindex $bit 0] ./${overlay_name}.bit
set hwh [get_files -all -of_objects $bd_file ${bd_name}.hwh]
if {[llength $hwh] == 0} { set hwh [glob -nocomplain ./vivado/*/sources_1/bd/${bd_name}/hw_handoff/${bd_name}.hwh] }
if {[llength $hwh] == 0} { error "no hardware handoff (${bd_name}.hwh) for $bd_file" }
file copy -force [lindex $hwh 0] ./${overlay_name}.hwh
puts "lenet5 overlay for $board_name: [file normalize ./${overlay_name}.bit], [file normalize ./${overlay_name}.hwh]"
