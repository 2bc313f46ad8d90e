# Vitis HLS flow of the LeNet-5 accelerator: C simulation, synthesis, C/RTL co-simulation and
# export as an IP catalog entry.  Not run on the development machines (no Vitis HLS there).
#
#   vitis_hls -f build_prj.tcl -tclargs [board=pynq-z2] [part=PART] [period=10] \
#                                       [steps=csim,csynth,cosim,export] [cosim_images=20]
#
# board picks the part (pynq-z2 xc7z020clg400-1, zcu104 xczu7ev-ffvc1156-2-e,
# kv260 xck26-sfvc784-2LV-c, kcu-compare xcku095-ffvb2104-1-c: synthesis only, to compare with
# the original Kintex result); part= overrides it.  period is the clock period in ns (10 = 100 MHz).
# The same names work as environment variables: LENET5_BOARD, LENET5_PART, LENET5_PERIOD,
# LENET5_STEPS, LENET5_COSIM_IMAGES.
# Before running: python -m lenet5_pynq.export golden --out build/golden  (make golden).
# The VLNV comes from generated/lenet5_types.h (lenet5_pynq/hls_config.py).

set here [file dirname [file normalize [info script]]]
cd $here

array set boards {
    pynq-z2     xc7z020clg400-1
    zcu104      xczu7ev-ffvc1156-2-e
    kv260       xck26-sfvc784-2LV-c
    kcu-compare xcku095-ffvb2104-1-c
}
array set opt {board pynq-z2 part "" period 10 steps csim,csynth,cosim,export cosim_images 20}
foreach {key var} {board LENET5_BOARD part LENET5_PART period LENET5_PERIOD steps LENET5_STEPS cosim_images LENET5_COSIM_IMAGES} {
    if {[info exists ::env($var)]} { set opt($key) $::env($var) }
}
foreach arg $argv {
    if {![regexp {^([a-z_]+)=(.*)$} $arg -> key value] || ![info exists opt($key)]} {
        error "unknown argument '$arg': use board=, part=, period=, steps=, cosim_images="
    }
    set opt($key) $value
}
if {$opt(part) eq ""} {
    if {![info exists boards($opt(board))]} { error "unknown board $opt(board): [array names boards]" }
    set opt(part) $boards($opt(board))
}
if {$opt(board) eq "kcu-compare" && $opt(steps) eq "csim,csynth,cosim,export"} { set opt(steps) csynth }
set steps [split $opt(steps) ,]

# The IP's identity, from the generated header (one source: lenet5_pynq/hls_config.py).
set fh [open generated/lenet5_types.h r]
set types [read $fh]
close $fh
foreach field {Vendor Library Version} {
    if {![regexp "k${field}\\\[\\\] = \"(\[^\"\]+)\"" $types -> value]} { error "k$field not in generated/lenet5_types.h" }
    set ip([string tolower $field]) $value
}

set golden [file normalize build/golden]
set cflags "-std=c++14 -I$here -I$here/generated"
puts "lenet5: part $opt(part), period $opt(period) ns, steps $steps, IP $ip(vendor):$ip(library):lenet5:$ip(version)"

open_project -reset build/prj_$opt(board)
set_top lenet5
add_files lenet5.cpp -cflags $cflags
add_files -tb tb/lenet5_tb.cpp -cflags $cflags
open_solution -reset solution -flow_target vivado
set_part $opt(part)
create_clock -period $opt(period) -name default

if {"csim" in $steps} {
    csim_design -argv "$golden"
}
if {"csynth" in $steps || "cosim" in $steps || "export" in $steps} {
    csynth_design
}
if {"cosim" in $steps} {
    cosim_design -rtl verilog -trace_level none -argv "$golden $opt(cosim_images)"
}
if {"export" in $steps} {
    export_design -format ip_catalog -rtl verilog -vendor $ip(vendor) -library $ip(library) -version $ip(version) \
        -display_name "LeNet-5 MNIST classifier" -description "LeNet-5 inference on AXI4-Stream, weights loadable at run time"
}
exit
